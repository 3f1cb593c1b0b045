from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benhan.encounters import icd10


class Command(BaseCommand):
    help = "Load the shipped ICD-10 list, or import Vietnamese titles from the Ministry's list."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="sub", required=True)
        sub.add_parser("load", help="create or update codes from the shipped WHO list")
        imp = sub.add_parser("import-vi", help="set Vietnamese titles from a CSV (QĐ 4469/QĐ-BYT)")
        imp.add_argument("file", type=Path)

    def handle(self, *args, sub, **options):
        if sub == "load":
            n = icd10.load_shipped()
            self.stdout.write(f"ICD-10: {n} codes created or updated from {icd10.SHIPPED.name}")
            return
        path = options["file"]
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        try:
            n, unknown = icd10.import_vietnamese(path)
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            raise CommandError(f"cannot read {path}: {e}") from e
        self.stdout.write(f"Vietnamese titles set for {n} codes")
        if unknown:
            shown = ", ".join(unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            self.stdout.write(
                f"{len(unknown)} codes in the file are not in the list: {shown}{more}"
            )
