"""What the profile page shows, read from the service and worded in the page's locale."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from api.lanes import Lane
from api.service import NotFound, Service
from api.web.strings import STRINGS
from bandit.explain import reason_text
from streaming.notes import view as note_view


def when(ts: float) -> str:
    """A moment as the page shows it (UTC, to the minute)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def page_context(service: Service, tenant: str, user_id: str, locale: str) -> dict[str, Any]:
    """The page's data; ``NotFound`` when attune stores nothing about the user."""
    profile = service.profile(tenant, user_id)
    t = STRINGS[locale]
    now = time.time()
    notes = [note_view(n, now) for n in _raw_notes(service, tenant, user_id)]
    live = [n for n in notes if n["status"] != "superseded"]
    return {
        "paused": profile["personalization"] == "paused",
        "preferences": _preferences(service.lane(tenant), profile, locale),
        "notes": [_note(n, t) for n in live],
        "replaced": [
            {**_note(n, t), "when": t["superseded"].format(time=when(n["valid_to"]))}
            for n in notes
            if n["status"] == "superseded"
        ],
        "decisions": _decisions(service, tenant, user_id, locale, {n["note_id"] for n in notes}),
    }


def _raw_notes(service: Service, tenant: str, user_id: str) -> tuple[dict[str, Any], ...]:
    memory = service.memory(tenant, user_id)
    return memory.notes if memory is not None else ()


def _preferences(lane: Lane, profile: dict[str, Any], locale: str) -> list[dict]:
    out = []
    for dim in lane.catalog.dimensions:
        pref = profile["preferences"][dim.name]
        levels = {lv.name: lv.label_in(locale) for lv in dim.levels}
        pinned = profile["pins"].get(dim.name)
        out.append(
            {
                "name": dim.name,
                "label": dim.label_in(locale),
                "pin_label": STRINGS[locale]["pin_label"].format(dimension=dim.label_in(locale)),
                "preferred": levels[pref["preferred"]],
                "confidence": round(100 * pref["confidence"]),
                "levels": list(levels.items()),
                "pinned": levels.get(pinned) if pinned else None,
                "pinned_value": pinned,
            }
        )
    return out


def _note(n: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
    history = [
        {
            "text": h["text"],
            "when": t["earlier_version"].format(version=h["version"], time=when(h["valid_to"])),
        }
        for h in reversed(n["history"])
    ]
    return {
        "note_id": n["note_id"],
        "text": n["text"],
        "short": n["text"] if len(n["text"]) <= 40 else n["text"][:39] + "…",
        "key": n["key"],
        "source": t[f"source_{n['source']}"],
        "pinned": n["pinned"],
        "expires": t["expires"].format(time=when(n["expires_at"])) if n["expires_at"] else "",
        "history": history,
    }


def _decisions(
    service: Service, tenant: str, user_id: str, locale: str, known_notes: set[str]
) -> list[dict[str, Any]]:
    lane = service.lane(tenant)
    raw = lane.backend.export_user(f"{tenant}/{user_id}")
    recent = json.loads(raw).get("recent", []) if raw else []
    notes = {n["note_id"]: n["text"] for n in _raw_notes(service, tenant, user_id)}
    out = []
    for d in reversed(recent):
        strategy = _strategy(lane, d["strategy_id"], locale)
        reasons = [_reason(lane, locale, r, d["reasons"], notes) for r in d["reasons"]]
        out.append(
            {
                "id": d["decision_id"],
                "when": when(d["ts"]),
                "strategy": strategy,
                "reasons": reasons,
            }
        )
    return out


def _strategy(lane: Lane, strategy_id: str | None, locale: str) -> str:
    catalog = lane.catalog
    try:
        levels = catalog.levels_of(catalog.arm_index(strategy_id or ""))
    except KeyError:
        return strategy_id or ""
    parts = []
    for dim in catalog.dimensions:
        level = dim.levels[dim.level_names.index(levels[dim.name])]
        parts.append(f"{dim.label_in(locale)}: {level.label_in(locale)}")
    return " · ".join(parts)


def _reason(
    lane: Lane,
    locale: str,
    r: dict[str, Any],
    siblings: list[dict[str, Any]],
    notes: dict[str, str],
) -> dict[str, str]:
    """A stored reason (``api.lanes._unworded``) worded in ``locale``."""
    kind = r["kind"]
    template = kind
    if kind == "exploration":
        alone = all(s["kind"] in ("exploration", "note") for s in siblings)
        template = "exploration" if alone else "exploration_more"
    note = None
    if kind == "note":
        note = notes.get(r.get("note_id", ""))
        template = "note" if note is not None else "note_deleted"
    try:
        text = reason_text(
            lane.catalog,
            locale,
            template,
            dimension=r.get("dimension"),
            level=r.get("level"),
            feature=r.get("feature"),
            note=note,
            group=r.get("group"),
            spec=lane.engine.context,
        )
    except (KeyError, ValueError):  # a reason about a dimension the catalog no longer has
        text = ""
    return {"kind": kind, "text": text}


__all__ = ["NotFound", "page_context", "when"]
