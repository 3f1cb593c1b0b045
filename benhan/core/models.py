from __future__ import annotations

from django.db import IntegrityError, models, transaction


class Submission(models.Model):
    """A form submission already acted on, keyed by the one-time token in the form.

    A double-clicked or re-sent form carries the same token: the second request finds
    the first one's result here and shows it instead of creating a duplicate.
    """

    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    url = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.token

    @classmethod
    def claim(cls, token: str) -> Submission | None:
        """Claim the token inside the caller's transaction.

        Returns None when claimed (go ahead), or the earlier submission when the token
        was used before.
        """
        if not token:
            return None
        try:
            with transaction.atomic():
                cls.objects.create(token=token)
        except IntegrityError:
            return cls.objects.get(token=token)
        return None

    @classmethod
    def record_result(cls, token: str, url: str) -> None:
        if token:
            cls.objects.filter(token=token).update(url=url)
