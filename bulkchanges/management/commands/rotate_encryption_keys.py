"""``manage.py rotate_encryption_keys`` — re-encrypt every secret under the first key of
``PONDOPS_FERNET_KEYS``, after which the other keys can be removed (docs/security/secrets.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.services.encryption_keys import encryption_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every carrier, webhook and callback secret under the first key of "
        "PONDOPS_FERNET_KEYS (batched, one transaction a batch, safe to run again). Run it after "
        "putting a new key first and deploying; then the old key can be removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be re-encrypted; write nothing.",
        )
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        dry_run = options["dry_run"]
        rotations = encryption_keys_rotate(dry_run=dry_run, batch_size=options["batch_size"])
        verb = "to re-encrypt" if dry_run else "re-encrypted"
        for rotation in rotations:
            line = (
                f"{rotation.label}: {rotation.reencrypted} {verb}, "
                f"{rotation.current} already under the first key"
            )
            if rotation.changed_meanwhile:
                line += f", {rotation.changed_meanwhile} changed meanwhile (run again)"
            if rotation.undecryptable:
                line += f", {len(rotation.undecryptable)} no key opens"
            self.stdout.write(line)
        unopened = [
            f"{rotation.label} (ids {', '.join(map(str, rotation.undecryptable))})"
            for rotation in rotations
            if rotation.undecryptable
        ]
        if unopened:
            raise CommandError(
                "no key in PONDOPS_FERNET_KEYS opens these values, left as they are: "
                f"{'; '.join(unopened)}. Do not remove a key until every value opens under the "
                "first one."
            )
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
