#!/usr/bin/env python3
"""Checks a Grafana dashboard against Grafana's published dashboard schema.

Grafana itself cannot run here (not packaged for Debian bookworm, PyPI or npm), so the next
best judge is the grafana-foundation-sdk (Apache-2.0), whose models are generated from
Grafana's own schema (dashboard kind, panel plugins' options and field configs, the Prometheus
query). Decoding keeps only the fields the schema knows, at every level (panel options,
`fieldConfig.defaults.custom`, each query), so a field lost on the way back is one Grafana
does not know: a typo, or a setting that would be silently ignored on import.

Usage: check_schema.py DASHBOARD.json   (exit 0: conforms; 1: differences, printed; 2: no SDK)
"""

import json
import sys

try:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.models import dashboard
except ImportError:
    print(
        "grafana-foundation-sdk is not installed: "
        "python3 -m pip install 'grafana-foundation-sdk==1769699998!10.1.0' "
        "(scripts/setup.sh does)",
        file=sys.stderr,
    )
    sys.exit(2)

# Keys outside the dashboard schema that Grafana's own exports carry: the import form reads
# `__inputs` (the data source to pick) and `__requires`; `definition` is the variable editor's
# display text of its query; `builtIn` marks the built-in annotation, which Grafana would
# otherwise add a second time.
IMPORT_ONLY = {"__inputs", "__requires", "definition", "builtIn"}


def differences(before, after, path=""):
    if isinstance(before, dict):
        if not isinstance(after, dict):
            yield f"{path}: became {type(after).__name__}"
            return
        for key, value in before.items():
            here = f"{path}.{key}"
            if key not in after:
                if key not in IMPORT_ONLY:
                    yield f"{here}: not in Grafana's schema ({json.dumps(value)[:60]})"
            else:
                yield from differences(value, after[key], here)
    elif isinstance(before, list):
        if not isinstance(after, list) or len(before) != len(after):
            yield f"{path}: list changed"
            return
        for i, (b, a) in enumerate(zip(before, after)):
            yield from differences(b, a, f"{path}[{i}]")
    elif before != after:
        yield f"{path}: {before!r} became {after!r}"


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        original = json.load(f)
    plugins.register_default_plugins()
    model = dashboard.Dashboard.from_json(original)
    decoded = json.loads(json.dumps(model.to_json(), default=lambda o: o.to_json()))
    problems = list(differences(original, decoded))

    # A panel type or query the SDK has no model for would pass through undecoded, unchecked.
    panels = list(model.panels or [])
    for row in list(panels):
        panels.extend(getattr(row, "panels", None) or [])
    for panel in panels:
        if isinstance(panel, dashboard.RowPanel):
            continue
        if isinstance(panel.options, dict):
            problems.append(f"panel {panel.title!r}: no schema for panel type {panel.type!r}")
        for target in panel.targets or []:
            if type(target).__module__.rsplit(".", 1)[-1] != "prometheus":
                problems.append(f"panel {panel.title!r}: query not decoded as Prometheus")

    for p in problems:
        print(p)
    print(f"{len(panels)} panels checked, {len(problems)} differences")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
