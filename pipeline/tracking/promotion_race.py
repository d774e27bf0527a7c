"""Concurrent promotions (driver side): two train jobs of one registered model finishing together.

MLflow's registry has no compare-and-set for aliases, so two jobs that both read the same @champion and both beat
it would each move the alias, and the slower write would win even when it is the worse model. The protocol here
makes the end state the best of the competing candidates whatever the order of the requests:

1. before moving the alias, a promoter tags its version `promotion.intent` (metric, value, time);
2. it moves the alias;
3. it then reads every version with a recent intent for the same metric (newer than the champion it compared
   against) and, if one of them is better than itself, moves the alias to that one and says so.

Why this settles: if A (worse) writes last, A's read in step 3 comes after its own write, which comes after B's
write, which comes after B's tag: A sees B and hands the alias back to B. If B writes last, B holds it. Recent
means within RACE_WINDOW_S, so a human's later rollback is not undone by old intents.
"""

from __future__ import annotations

import json
import logging
import time

log = logging.getLogger(__name__)
INTENT_TAG = "promotion.intent"
RACE_WINDOW_S = 900.0


ALIAS_WRITE_ATTEMPTS = 4


def set_alias(client, name: str, alias: str, version: str) -> None:
    """Move an alias, tolerating a concurrent first write of the same alias.

    A registry on a database inserts an alias row the first time it is set; two jobs setting the same new alias at
    once make one insert fail on the primary key (measured: PostgreSQL `registered_model_alias_pk`). The row then
    exists, so the same call again is an update and succeeds.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(1, ALIAS_WRITE_ATTEMPTS + 1):
        try:
            client.set_registered_model_alias(name, alias, version)
            return
        except MlflowException as exc:
            text = str(exc)
            concurrent = "registered_model_alias_pk" in text or "UniqueViolation" in text or "UNIQUE constraint" in text
            if not concurrent or attempt == ALIAS_WRITE_ATTEMPTS:
                raise
            log.info("@%s of %s was written by another job at the same moment; writing it again", alias, name)
            time.sleep(0.2 * attempt)


def declare_intent(client, name: str, version: str, metric: str, value: float | None) -> None:
    """Step 1: record on the version that it is about to take @champion with this metric value."""
    intent = {"metric": metric, "value": value, "time": time.time()}
    client.set_model_version_tag(name, version, INTENT_TAG, json.dumps(intent))


def settle(
    client, name: str, alias: str, version: str, metric: str, higher_is_better: bool, compared_with: str | None
) -> str | None:
    """Step 3, after this version took `alias`: the competing version that is better and now holds it, or None."""
    floor = int(compared_with) if compared_with else 0
    now = time.time()
    best_version, best_value = None, None
    for candidate in client.search_model_versions(f"name='{name}'"):
        raw = (candidate.tags or {}).get(INTENT_TAG)
        if raw is None or int(candidate.version) <= floor:
            continue
        intent = json.loads(raw)
        if intent["metric"] != metric or intent["value"] is None or now - intent["time"] > RACE_WINDOW_S:
            continue
        value = intent["value"]
        better = best_value is None or (value > best_value if higher_is_better else value < best_value)
        # Ties go to the newer version, so every promoter picks the same one.
        if better or (value == best_value and int(candidate.version) > int(best_version)):
            best_version, best_value = str(candidate.version), value
    if best_version is None or best_version == str(version):
        return None
    set_alias(client, name, alias, best_version)
    log.warning(
        "%s v%s and v%s were promoted at the same time: @%s goes to v%s (%s %.5f), the better of the two",
        name,
        version,
        best_version,
        alias,
        best_version,
        metric,
        best_value,
    )
    return best_version
