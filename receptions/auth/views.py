"""Sign-in, sign-out and the one-time set-password page."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from ..extensions import limiter
from ..urls import safe_next
from . import services
from .forms import SetPasswordForm, SignInForm

bp = Blueprint("auth", __name__, url_prefix="/auth")


def _sign_in_limit() -> str:
    return str(current_app.config["SIGN_IN_RATE_LIMIT"])


@bp.route("/sign-in", methods=["GET", "POST"])
@limiter.limit(_sign_in_limit, methods=["POST"])
def sign_in():
    if current_user.is_authenticated:
        return redirect(url_for("staff.dashboard"))
    form = SignInForm()
    status = 200
    if form.validate_on_submit():
        user = services.authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            return redirect(safe_next(request.args.get("next")) or url_for("staff.dashboard"))
        form.password.errors.append(_("The e-mail or password is not correct."))
        status = 401
    elif form.is_submitted():
        status = 422
    return render_template("auth/sign_in.html", form=form), status


@bp.route("/sign-out", methods=["POST"])
@login_required
def sign_out():
    logout_user()
    flash(_("You have signed out."), "info")
    return redirect(url_for("public.home"))


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    user = services.user_for_token(token)
    form = SetPasswordForm()
    if form.validate_on_submit():
        services.set_password_with_token(token, form.password.data or "")
        flash(_("Your password is set. You can sign in now."), "success")
        return redirect(url_for("auth.sign_in"))
    status = 422 if form.is_submitted() else 200
    return render_template("auth/set_password.html", form=form, user=user), status
