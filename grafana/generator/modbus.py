"""Modbus devices: gateways, the devices behind them and their registers."""

from __future__ import annotations

from alerts.thresholds import Thresholds
from grafana.generator.common import dashboard, minutes, sel
from grafana.generator.panels import (
    ALL_GOOD_STEPS,
    JSON,
    NONE_FAILING_STEPS,
    UP_DOWN,
    Look,
    Query,
    state_timeline,
    table,
    timeseries,
    value_map,
)

MODBUS_EXCEPTIONS = value_map(
    (0, "none", "green"),
    (1, "1 illegal function", "red"),
    (2, "2 illegal data address", "red"),
    (3, "3 illegal data value", "red"),
    (4, "4 device failure", "red"),
    (5, "5 acknowledge", "orange"),
    (6, "6 device busy", "orange"),
    (10, "10 gateway path unavailable", "red"),
    (11, "11 gateway target did not answer", "red"),
)


def build(t: Thresholds) -> JSON:
    panels = [
        state_timeline(
            "Gateway connection",
            "readiness_modbus_gateway_up: the TCP connection or serial port to the"
            " gateway worked.",
            [Query(sel("readiness_modbus_gateway_up"), "{{probe}}")],
            Look("none", ALL_GOOD_STEPS, mappings=UP_DOWN),
        ),
        state_timeline(
            "Device answers",
            "readiness_modbus_device_up: the unit behind the gateway answered.",
            [Query(sel("readiness_modbus_device_up"), "{{probe}}")],
            Look("none", ALL_GOOD_STEPS, mappings=UP_DOWN),
        ),
        timeseries(
            "Register values",
            "Scaled register values (raw * scale + offset); the unit is in the"
            " legend, as each register has its own.",
            [
                Query(
                    sel("readiness_modbus_register_value"),
                    "{{probe}} {{register}} ({{unit}})",
                )
            ],
            Look("short"),
            w=16,
        ),
        table(
            "Register values now",
            "Last value of every register read in the last run, with its unit.",
            [Query(sel("readiness_modbus_register_value"))],
            Look("short"),
            w=8,
            columns=("probe", "register", "Value", "unit"),
        ),
        state_timeline(
            "Register reads",
            "readiness_modbus_register_read_success per register: read in the last"
            " run or not.",
            [
                Query(
                    sel("readiness_modbus_register_read_success"),
                    "{{probe}} {{register}}",
                )
            ],
            Look(
                "none",
                ALL_GOOD_STEPS,
                mappings=value_map((0, "unreadable", "red"), (1, "read", "green")),
            ),
        ),
        state_timeline(
            "Exception codes",
            "Modbus exception codes the device answered, per register and for the"
            " device as a whole (4 device failure, 10 / 11 gateway path or"
            " target); none is 0.",
            [
                Query(
                    sel("readiness_modbus_register_exception_code"),
                    "{{probe}} {{register}}",
                ),
                Query(
                    sel("readiness_modbus_device_exception_code"), "{{probe}} device"
                ),
            ],
            Look("none", NONE_FAILING_STEPS, mappings=MODBUS_EXCEPTIONS),
        ),
        timeseries(
            "Unreadable registers",
            "Registers per probe that could not be read in the last run; the"
            f" alert fires after {minutes(t.modbus.for_)} above 0.",
            [
                Query(
                    "sum by (probe) "
                    f"({sel('readiness_modbus_register_read_success')} == bool 0)",
                    "{{probe}}",
                )
            ],
            Look("short", NONE_FAILING_STEPS, min=0),
        ),
        timeseries(
            "Request time and gateway wait",
            "Slowest request of the last run (queueing excluded) and the time the"
            " run waited for its turn on a shared gateway.",
            [
                Query(sel("readiness_modbus_request_seconds"), "{{probe}} request"),
                Query(sel("readiness_modbus_gateway_wait_seconds"), "{{probe}} wait"),
            ],
            Look("s"),
        ),
    ]
    return dashboard(
        "readiness-modbus",
        "Readiness: Modbus devices",
        "Modbus gateways, the devices behind them and their registers.",
        "modbus",
        panels,
    )
