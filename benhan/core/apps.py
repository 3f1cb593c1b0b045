from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "benhan.core"
    verbose_name = _("Clinic")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from benhan.core import checks  # noqa: F401 - registers the system checks

        post_migrate.connect(_analyze_after_migrate, sender=self)


def _analyze_after_migrate(sender, using="default", **kwargs) -> None:
    from benhan.core.db import analyze

    analyze()
