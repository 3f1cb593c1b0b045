"""The price list is configuration; records and documents are clinical data (not here)."""

from django.contrib import admin

from benhan.records.models import PriceItem


@admin.register(PriceItem)
class PriceItemAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "group", "unit", "price", "insurance_price",
                    "is_active", "facility"]  # fmt: skip
    list_filter = ["kind", "group", "is_active", "facility"]
    search_fields = ["code", "name"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # statements refer to prices by value; retire an item instead
