"""The system slice's personal data: none (its messages are test and log records).

A slice that records something about a person names those fields here, with their data
subject (see commands_app/slices/banking/personal.py and commands_app/domain/personal.py).
"""

from commands_app.domain.personal import PersonalData

PERSONAL: dict[type, PersonalData] = {}
