from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "benhan.core"
    verbose_name = _("Clinic")

    def ready(self) -> None:
        from benhan.core import checks  # noqa: F401 - registers the system checks
