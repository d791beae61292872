// A page shown again because its form had errors moves the focus to the error summary
// (the GOV.UK pattern), so a screen reader reads it and a phone scrolls to it. Every form's
// summary comes from the error_summary macro (templates/macros/forms.html), which marks it.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) { summary.focus(); }
  });
})();
