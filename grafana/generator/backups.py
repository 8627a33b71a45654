"""Backups: freshness, count, sizes, retention and integrity of backup sets."""

from __future__ import annotations

from alerts.thresholds import Thresholds
from exporter.kinds import check
from grafana.generator.common import dashboard, limit_field, minutes, of_kind, sel
from grafana.generator.panels import (
    ALL_GOOD_STEPS,
    JSON,
    PASS_FAIL,
    Look,
    Query,
    stat,
    state_timeline,
    steps,
    timeseries,
    value_map,
)

# Age of the newest backup / the probe's own limit: red past 1, where
# backup_fresh fails and ReadinessBackupTooOld fires.
AGE_STEPS = steps("green", (1.0, "red"))


def build(t: Thresholds) -> JSON:
    fresh = check("backup", "backup_fresh")
    age_max = limit_field("backup", fresh)
    newest_age = f"time() - {sel('readiness_backup_newest_timestamp_seconds')}"
    # Each probe has its own age_max: the ratio puts every probe on one scale.
    age_ratio = (
        f"({newest_age}) / on (job, instance, probe)"
        f" {sel('readiness_backup_age_max_seconds')}"
    )
    # Every check of the backup probes (the kind has no other checks).
    backup_checks = of_kind(sel("readiness_check_passed"), "backup")
    panels = [
        stat(
            "Age of the newest backup",
            "time() - readiness_backup_newest_timestamp_seconds; measured against"
            f" each probe's own {age_max} in 'Newest backup age / max age'.",
            [Query(newest_age, "{{probe}}")],
            Look("dtdurations"),
            w=8,
        ),
        stat(
            "Newest backup age / max age",
            f"Age of the newest backup as a share of the probe's {age_max}"
            " (readiness_backup_age_max_seconds). Red from 100 %, where"
            f" {fresh} fails and ReadinessBackupTooOld fires after"
            f" {minutes(t.backups.too_old_for)}.",
            [Query(age_ratio, "{{probe}}")],
            Look("percentunit", AGE_STEPS, min=0),
            w=8,
        ),
        stat(
            "Backups kept",
            "Files matching each probe's glob (readiness_backup_files), those being"
            " written included.",
            [Query(sel("readiness_backup_files"), "{{probe}}")],
            Look("short", steps("red", (1, "green"))),
            w=8,
        ),
        timeseries(
            "Newest backup age / max age over time",
            f"Should saw-tooth below the dashed 100 % line (the probe's {age_max}):"
            " it drops as each backup lands and climbs until the next.",
            [Query(age_ratio, "{{probe}}")],
            Look("percentunit", AGE_STEPS, min=0),
        ),
        state_timeline(
            "Backup checks",
            f"{fresh} (younger than {age_max}), {check('backup', 'backup_retention')},"
            f" {check('backup', 'backup_cleanup')}, {check('backup', 'backup_size')}"
            f" and, when verify is on, {check('backup', 'backup_integrity')}; with"
            f" expect_encrypted, {check('backup', 'backup_encrypted')}.",
            [Query(backup_checks, "{{probe}} {{check}}")],
            Look("none", ALL_GOOD_STEPS, mappings=PASS_FAIL),
        ),
        timeseries(
            "Backup sizes",
            "Size of the newest backup and of all files matching the glob.",
            [
                Query(sel("readiness_backup_newest_size_bytes"), "{{probe}} newest"),
                Query(sel("readiness_backup_total_size_bytes"), "{{probe}} total"),
            ],
            Look("bytes"),
        ),
        state_timeline(
            "Integrity",
            "readiness_backup_verify_success: the newest archive was read end to"
            " end (only for probes with verify on).",
            [Query(sel("readiness_backup_verify_success"), "{{probe}}")],
            Look(
                "none",
                ALL_GOOD_STEPS,
                mappings=value_map((0, "CORRUPT", "red"), (1, "READABLE", "green")),
            ),
        ),
        timeseries(
            "Retention coverage",
            "Age of the oldest backup kept (should reach the retention window) and"
            " the largest gap between backups inside it.",
            [
                Query(
                    f"time() - {sel('readiness_backup_oldest_timestamp_seconds')}",
                    "{{probe}} oldest",
                ),
                Query(sel("readiness_backup_largest_gap_seconds"), "{{probe}} gap"),
            ],
            Look("s"),
            w=24,
        ),
    ]
    return dashboard(
        "readiness-backups",
        "Readiness: backups",
        "Backup sets: freshness, count, sizes, retention and integrity.",
        "backup",
        panels,
    )
