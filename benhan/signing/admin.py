"""Signing configuration in the admin: how each staff member signs.

Certificates and keys are managed with `benhan pki` (issue, revoke), never edited here.
"""

from django.contrib import admin

from benhan.signing.models import SignerProfile


@admin.register(SignerProfile)
class SignerProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "method", "token_key_label", "csc_credential_id"]
    list_filter = ["method"]
    search_fields = ["user__username", "user__full_name"]
    autocomplete_fields = ["user"]
