"""Running the day: agenda, check-in, walk-ins, questions and their outcomes, close-out, sign-off."""
