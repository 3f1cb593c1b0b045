"""Only the code list is configured in the admin; encounters are clinical data."""

from django.contrib import admin

from benhan.encounters.models import Icd10Code


@admin.register(Icd10Code)
class Icd10CodeAdmin(admin.ModelAdmin):
    list_display = ["code", "title_vi", "title_en", "chapter"]
    search_fields = ["code", "title_vi", "title_en"]
    list_filter = ["chapter"]
    fields = ["code", "title_vi", "title_en", "chapter"]

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # diagnoses refer to codes; a code is never removed

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser
