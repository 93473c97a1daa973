"""``manage.py qcluster`` — django-q2's cluster, whose processes die with their master.

Wraps django-q2's own command (INSTALLED_APPS lists ``bulkchanges`` before ``django_q``, so
Django finds this one first): before the cluster forks, :mod:`bulkchanges.orphans` makes every
process it forks exit when its parent dies. After a SIGKILL of the master, the sentinel and
its workers stop within moments instead of working on beside a restarted cluster.
"""

from __future__ import annotations

from typing import Any

from django_q.management.commands.qcluster import Command as DjangoQClusterCommand

from bulkchanges.orphans import children_die_with_parent
from pondops.startup import command_preflight


class Command(DjangoQClusterCommand):
    help = "Starts django-q2's cluster; its processes exit when their parent dies."

    def handle(self, *args: Any, **options: Any) -> None:
        command_preflight()
        children_die_with_parent()
        super().handle(*args, **options)
