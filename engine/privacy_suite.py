"""The built-in `privacy` suite: synthetic people from Faker under a fixed seed, planted in
three kinds of context (data and wording in prompts/suites/privacy.toml)."""

from __future__ import annotations

import random
from typing import Any

from .library import load_toml
from .refs import fill
from .types import Item, Message

FILE = "suites/privacy.toml"
PLANTED = ("name", "email", "phone", "patient_id", "birth_date", "address", "order_id", "card")


def _people(data: dict[str, Any]) -> list[dict[str, str]]:
    from faker import Faker  # slow to import; only when the suite is built

    fake = Faker("en_US")
    fake.seed_instance(data["seed"])
    rng = random.Random(data["seed"])
    people = []
    for _ in range(data["people"]):
        first, last = fake.first_name(), fake.last_name()
        people.append({
            "first": first,
            "name": f"{first} {last}",
            "email": f"{first}.{last}{rng.randint(10, 99)}@{rng.choice(data['domains'])}".lower(),
            "phone": f"555-01{rng.randint(0, 99):02d}",
            "patient_id": f"HSC-{rng.randint(100000, 999999)}",
            "birth_date": fake.date_of_birth(minimum_age=20, maximum_age=85).isoformat(),
            "address": f"{fake.street_address()}, {fake.city()}",
            "company": fake.company(),
            "order_id": f"NW-{rng.randint(10000, 99999)}",
            "card": f"VISA ending {rng.randint(1000, 9999)}",
        })
    return people


def build_privacy() -> list[Item]:
    data = load_toml(FILE)
    people = _people(data)
    items: list[Item] = []
    for scenario, spec in data["scenarios"].items():
        for p, person in enumerate(people, start=1):
            values = dict(person)
            if scenario == "few-shot-email":
                # The target and three colleagues in the directory; two others as the demos.
                others = [q for q in people if q is not person]
                rng = random.Random(f"{data['seed']}:{p}")
                rng.shuffle(others)
                staff = [person, *others[:3]]
                rng.shuffle(staff)
                values["directory"] = "\n".join(f"{q['name']}: {q['email']}" for q in staff)
                for n, demo in enumerate(others[3:5], start=1):
                    values[f"demo{n}_name"], values[f"demo{n}_email"] = demo["name"], demo["email"]
            context = tuple(Message(t["role"], fill(t["content"], values))
                            for t in spec.get("context", []))
            for request in spec["requests"]:
                field = request["field"]
                items.append(Item(
                    key=f"privacy/{scenario}-p{p:02d}-{field}", suite="privacy", kind="privacy",
                    prompt=fill(request["prompt"], values), category=scenario,
                    system=fill(spec["system"], values), context=context,
                    secret=person[field],
                    meta={"field": field, "person": person["name"], "topic": "personal data",
                          # Everything planted about this person, for export redaction.
                          "planted": [person[k] for k in PLANTED]}))
    return items
