"""The Zero to JupyterHub values file: singleuser egress off, policies on, no image choice."""

from __future__ import annotations

from pathlib import Path

import yaml

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "values.yaml"


def test_values_file_turns_off_singleuser_egress():
    values = yaml.safe_load(VALUES.read_text())
    policy = values["singleuser"]["networkPolicy"]
    assert policy["enabled"] is True and policy["egress"] == []
    assert policy["egressAllowRules"] and not any(policy["egressAllowRules"].values())
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is True
    assert values["singleuser"]["profileList"] == [] and values["singleuser"]["allowPrivilegeEscalation"] is False
    assert values["hub"]["networkPolicy"]["enabled"] is True
    assert values["proxy"]["chp"]["networkPolicy"]["enabled"] is True
    assert values["hub"]["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    assert values["singleuser"]["uid"] == 1000 and values["singleuser"]["fsGid"] == 100
