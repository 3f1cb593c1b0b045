"""The test catalogue and the analyzers are configuration. Orders, specimens, results,
analyzer messages and ward notices are patient data: never registered here."""

from django.contrib import admin

from benhan.lab.models import Analyzer, AnalyzerCode, LabTest, PanelMember, ReferenceRange


class ReferenceRangeInline(admin.TabularInline):
    model = ReferenceRange
    extra = 0
    fields = ["sex", "age_min_days", "age_max_days", "low", "high", "text"]


class PanelMemberInline(admin.TabularInline):
    model = PanelMember
    fk_name = "panel"
    extra = 0
    fields = ["test", "position"]
    autocomplete_fields = ["test"]


@admin.register(LabTest)
class LabTestAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "specimen_type", "unit", "loinc", "moh_code", "price",
                    "is_panel", "needs_verifier", "active", "facility"]  # fmt: skip
    list_filter = ["kind", "active", "is_panel", "specimen_type", "facility"]
    search_fields = ["code", "name", "loinc", "moh_code"]
    inlines = [ReferenceRangeInline, PanelMemberInline]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # orders and results refer to tests; retire one (not active) instead


class AnalyzerCodeInline(admin.TabularInline):
    model = AnalyzerCode
    extra = 0
    fields = ["code", "test"]
    autocomplete_fields = ["test"]


@admin.register(Analyzer)
class AnalyzerAdmin(admin.ModelAdmin):
    list_display = ["name", "protocol", "transport", "host", "port", "serial_device", "active",
                    "facility"]  # fmt: skip
    list_filter = ["protocol", "transport", "active", "facility"]
    search_fields = ["name"]
    inlines = [AnalyzerCodeInline]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # its messages and results refer to it; set it inactive instead
