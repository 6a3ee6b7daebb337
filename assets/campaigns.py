"""Campaigns declared as data: each cohort model's `meta.campaign` block in dbt YAML."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
REQUIRED_KEYS = ("name", "template_id", "subject", "from_email", "occasion_column")
OPTIONAL_KEYS = ("from_name", "cooldown_days", "categories", "template_data")


class CampaignConfigError(ValueError):
    """A cohort's campaign block is incomplete or malformed; names the model and the key."""


@dataclass(frozen=True)
class Campaign:
    name: str
    cohort: str  # the dbt model (and DuckDB table) listing the members
    template_id: str
    subject: str
    from_email: str
    occasion_column: str
    from_name: str | None = None
    cooldown_days: int = 0
    categories: tuple[str, ...] = ()
    template_data: tuple[str, ...] = ()
    cohort_description: str = ""

    @property
    def asset_name(self) -> str:
        return f"send_{self.name}"

    def describe(self) -> str:
        """What a marketer needs to know, shown on the send asset."""
        once = f"once per contact and {self.occasion_column}"
        cooldown = f", and not again within {self.cooldown_days} days" if self.cooldown_days else ""
        return (
            f"Sends the '{self.name}' campaign (subject \"{self.subject}\", SendGrid template "
            f"{self.template_id}) to every member of {self.cohort}, {once}{cooldown}. Only the "
            f"latest business date sends. Cohort: {self.cohort_description}"
        ).strip()


def _campaign_block(node: Mapping[str, Any]) -> Mapping[str, Any] | None:
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    return meta.get("campaign")


def parse_campaign(model: str, block: Mapping[str, Any], description: str = "") -> Campaign:
    where = f"dbt model {model}, meta.campaign"
    if not isinstance(block, Mapping):
        raise CampaignConfigError(f"{where}: must be a mapping of keys to values")
    missing = [key for key in REQUIRED_KEYS if not block.get(key)]
    if missing:
        raise CampaignConfigError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(block) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise CampaignConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if not _NAME.match(str(block["name"])):
        raise CampaignConfigError(f"{where}.name: use lower-case letters, digits and _")
    for key in ("occasion_column", *block.get("template_data", ())):
        column = block["occasion_column"] if key == "occasion_column" else key
        if not _NAME.match(str(column)):
            raise CampaignConfigError(f"{where}: {column!r} is not a plain column name")
    try:
        cooldown = int(block.get("cooldown_days", 0) or 0)
    except (TypeError, ValueError):
        raise CampaignConfigError(f"{where}.cooldown_days: must be a whole number") from None
    return Campaign(
        name=str(block["name"]),
        cohort=model,
        template_id=str(block["template_id"]),
        subject=str(block["subject"]),
        from_email=str(block["from_email"]),
        from_name=block.get("from_name"),
        occasion_column=str(block["occasion_column"]),
        cooldown_days=cooldown,
        categories=tuple(str(c) for c in block.get("categories", ())),
        template_data=tuple(str(c) for c in block.get("template_data", ())),
        cohort_description=" ".join(str(description).split()),
    )


def campaigns_from_manifest(manifest: Mapping[str, Any]) -> list[Campaign]:
    """Every campaign the dbt project declares, sorted by name; names must be unique."""
    campaigns: dict[str, Campaign] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        block = _campaign_block(node)
        if block is None:
            continue
        campaign = parse_campaign(node["name"], block, node.get("description", ""))
        if campaign.name in campaigns:
            raise CampaignConfigError(
                f"campaign name {campaign.name!r} is declared by both "
                f"{campaigns[campaign.name].cohort} and {campaign.cohort}"
            )
        campaigns[campaign.name] = campaign
    return [campaigns[name] for name in sorted(campaigns)]
