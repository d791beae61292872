"""Citizen booking: book a slot, manage it with a private link, follow the question's status."""
