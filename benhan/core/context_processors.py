from django.http import HttpRequest

from benhan.audit.access import allowed


def clinic(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "facility": user.facility,
        "can": {
            "search": allowed(user, "patient.search"),
            "register": allowed(user, "patient.register"),
            "audit": user.role == "admin" or user.is_superuser,
            "records": allowed(user, "record.view"),
            "dashboard": allowed(user, "records.dashboard"),
            "admin": user.is_staff,
        },
    }
