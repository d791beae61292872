"""The one place that handles a citizen's IIN and phone number: validation, keyed hash, masking."""

from __future__ import annotations

import hashlib
import hmac

import phonenumbers

IIN_WEIGHTS_FIRST = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
IIN_WEIGHTS_SECOND = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)


def iin_check_digit(first_eleven: str) -> int | None:
    """The official control digit of an IIN, or None when the number cannot have one."""
    digits = [int(c) for c in first_eleven]
    check = sum(d * w for d, w in zip(digits, IIN_WEIGHTS_FIRST, strict=True)) % 11
    if check == 10:
        check = sum(d * w for d, w in zip(digits, IIN_WEIGHTS_SECOND, strict=True)) % 11
    return None if check == 10 else check


def normalise_iin(value: str) -> str:
    return "".join(value.split())


def is_valid_iin(value: str) -> bool:
    """Twelve digits whose last one is the control digit; nothing else is read from it."""
    iin = normalise_iin(value)
    if len(iin) != 12 or not iin.isascii() or not iin.isdigit():
        return False
    return iin_check_digit(iin[:11]) == int(iin[11])


def iin_hash(iin: str, key: str) -> str:
    """Keyed HMAC-SHA256 of the IIN: lets us count a citizen's bookings without storing the IIN."""
    return hmac.new(key.encode(), normalise_iin(iin).encode(), hashlib.sha256).hexdigest()


def iin_last4(iin: str) -> str:
    return normalise_iin(iin)[-4:]


def mask_iin(last4: str) -> str:
    return f"•••• •••• {last4}" if last4 else ""


class InvalidPhone(ValueError):
    pass


def normalise_phone(value: str) -> str:
    """A Kazakhstan mobile number in E.164 (+77xxxxxxxxx)."""
    try:
        number = phonenumbers.parse(value, "KZ")
    except phonenumbers.NumberParseException as error:
        raise InvalidPhone(str(error)) from error
    if (
        not phonenumbers.is_valid_number(number)
        or phonenumbers.region_code_for_number(number) != "KZ"
    ):
        raise InvalidPhone("not a valid Kazakhstan number")
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhone("not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """+77011234567 -> +7 701 ••• •• 67."""
    if len(e164) < 6:
        return "•••"
    return f"{e164[:2]} {e164[2:5]} ••• •• {e164[-2:]}"


def mask_email(address: str) -> str:
    """aigul.serik@example.kz -> a•••k@example.kz."""
    local, at, domain = address.partition("@")
    if not at:
        return "•••"
    return f"{local[:1]}•••{local[-1:] if len(local) > 1 else ''}@{domain}"


def mask_contact(recipient: str) -> str:
    """A phone number or an e-mail address, masked for logs and screens."""
    return mask_email(recipient) if "@" in recipient else mask_phone(recipient)
