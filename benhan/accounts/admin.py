"""Django admin: configuration only (facility, departments, staff). No clinical data."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.utils.translation import gettext_lazy as _

from benhan.accounts.models import Department, Facility, User
from benhan.audit import chain


@admin.register(Facility)
class FacilityAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "province_code"]


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "has_beds", "is_active", "facility"]
    list_filter = ["kind", "is_active", "facility"]
    search_fields = ["code", "name"]


@admin.register(User)
class StaffAdmin(UserAdmin):
    list_display = ["username", "full_name", "role", "facility", "is_active"]
    list_filter = ["role", "is_active", "facility", "departments"]
    search_fields = ["username", "full_name", "practising_certificate"]
    ordering = ["username"]
    filter_horizontal = ["departments"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        (_("Person"), {"fields": ["full_name", "title", "practising_certificate"]}),
        (_("Work"), {"fields": ["facility", "role", "departments"]}),
        (_("Status"), {"fields": ["is_active", "is_staff", "is_superuser", "last_login"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["username", "full_name", "facility", "role", "password1", "password2"]}),
    ]
    readonly_fields = ["last_login"]

    def save_related(self, request, form, formsets, change):
        """Role, departments and status decide access to patients: audit every change."""
        user = form.instance
        before = getattr(user, "_audit_before", None) if change else None
        super().save_related(request, form, formsets, change)
        after = _access_snapshot(user)
        if before != after:
            chain.record(
                chain.Actor.from_request(request),
                "staff.change" if change else "staff.create",
                obj=user,
                detail={"old": before, "new": after},
            )

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._audit_before = _access_snapshot(obj)
        return obj


def _access_snapshot(user: User) -> dict:
    return {
        "role": user.role,
        "facility": user.facility_id,
        "departments": sorted(user.departments.values_list("code", flat=True)),
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
    }
