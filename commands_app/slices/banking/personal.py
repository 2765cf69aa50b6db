"""The banking slice's personal data: an account's owner, whose data subject is the account.

Sealed wherever it is stored (commands, events, snapshots) and erased everywhere at once by
`manage.py forget_subject <account id> --tenant <slug>` (commands_app/domain/personal.py).
The read models hold it in clear while it lives; forgetting rebuilds them.
"""

from commands_app.domain.personal import PersonalData
from commands_app.slices.banking.aggregate import Account
from commands_app.slices.banking.payloads import AccountOpened, OpenAccount

OWNER = PersonalData(fields=("owner",))  # subject: the account (the aggregate)

PERSONAL = {
    OpenAccount: OWNER,
    AccountOpened: OWNER,
    Account: OWNER,  # the owner kept in the account's snapshots
}
