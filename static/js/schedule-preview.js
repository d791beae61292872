// Live preview of a schedule's next sessions. The form works without it: the
// "Show the next sessions" button asks the server for the same fragment.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-preview-url]");
    var target = document.getElementById("preview");
    if (!form || !target || !window.fetch) { return; }
    var timer = null;
    function refresh() {
      var body = new FormData(form);
      body.delete("save");
      fetch(form.dataset.previewUrl, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) { target.innerHTML = html; })
        .catch(function () { /* keep the last preview; the button still works */ });
    }
    form.addEventListener("change", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, 300);
    });
  });
})();
