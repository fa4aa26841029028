"""Working offline: registering, editing, reading, searching, validating."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from campsync_client import RecordNotFound, Tablet, ValidationError

HEAD = {"given_name": "Mohammad", "family_name": "Karimi", "sex": "male", "birth_year": 1985}


def test_register_household_with_members(tablet: Tablet) -> None:
    household = tablet.register_household(
        HEAD,
        [
            {
                "given_name": "Fatima",
                "family_name": "Karimi",
                "sex": "female",
                "relationship_to_head": "spouse",
            }
        ],
        arrival_date=dt.date(2026, 11, 20),
        arrival_type="deported",
        needs={"shelter", "food"},
    )
    assert household.needs == {"shelter", "food"}
    assert household.arrival_date == dt.date(2026, 11, 20)
    assert household.head is not None
    assert household.head.given_name == "Mohammad"
    assert household.head.relationship_to_head == "head"
    assert [m.given_name for m in household.members] == ["Mohammad", "Fatima"]
    assert household.pending
    assert tablet.pending() == 3
    assert tablet.households() == [household]
    assert tablet.person(household.head_person_id).birth_year == 1985  # type: ignore[arg-type]


def test_repr_leaks_no_personal_data(tablet: Tablet) -> None:
    household = tablet.register_household(
        {**HEAD, "document_number": "AB123456"}, phone="+93700111222"
    )
    text = repr(household)
    for secret in ("Mohammad", "Karimi", "1985", "AB123456", "700111222"):
        assert secret not in text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"arrival_type": "teleported"}, "arrival_type"),
        ({"needs": {"ponies"}}, "needs"),
        ({"needs": "food"}, "needs"),
        ({"arrival_date": "26/11/2026"}, "arrival_date"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
        ({"head_person_id": str(uuid.uuid4())}, "head_person_id"),
    ],
)
def test_invalid_household_values_fail_at_once(tablet: Tablet, fields: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        tablet.register_household(HEAD, **fields)
    assert caught.value.field == field
    assert tablet.pending() == 0


def test_invalid_person_values_name_the_field_not_the_value(tablet: Tablet) -> None:
    with pytest.raises(ValidationError) as caught:
        tablet.register_household({**HEAD, "document_number": "Secret!!Value"})
    assert caught.value.field == "document_number"
    assert "Secret" not in str(caught.value)


def test_update_writes_only_what_changed(tablet: Tablet) -> None:
    household = tablet.register_household(HEAD, shelter_status="none")
    before = tablet.pending()
    tablet.update_household(household.id, shelter_status="none")
    assert tablet.pending() == before
    updated = tablet.update_household(household.id, shelter_status="tent_assigned", needs={"food"})
    assert updated.shelter_status == "tent_assigned"
    assert updated.needs == {"food"}
    assert tablet.pending() == before + 1


def test_needs_add_and_remove(tablet: Tablet) -> None:
    household = tablet.register_household(HEAD, needs={"food"})
    assert tablet.add_needs(household.id, "health", "wash").needs == {"food", "health", "wash"}
    assert tablet.remove_needs(household.id, "food").needs == {"health", "wash"}
    with pytest.raises(ValidationError):
        tablet.add_needs(household.id, "unicorns")


def test_people_and_households_lifecycle(tablet: Tablet) -> None:
    household = tablet.register_household(HEAD)
    with pytest.raises(ValidationError):
        tablet.delete_household(household.id, "because")
    child = tablet.add_person(household.id, given_name="Aisha", sex="female", birth_year=2019)
    assert child.household_id == household.id
    tablet.update_person(child.id, date_of_birth=dt.date(2019, 3, 1), dob_estimated=False)
    assert tablet.person(child.id).date_of_birth == dt.date(2019, 3, 1)
    tablet.delete_person(child.id, "duplicate")
    with pytest.raises(RecordNotFound):
        tablet.person(child.id)
    tablet.delete_household(household.id, "registered_in_error")
    with pytest.raises(RecordNotFound):
        tablet.household(household.id)
    assert tablet.households() == []
    assert [h.deleted for h in tablet.households(include_deleted=True)] == [True]


def test_unknown_ids(tablet: Tablet) -> None:
    with pytest.raises(RecordNotFound):
        tablet.household(uuid.uuid4())
    with pytest.raises(ValidationError):
        tablet.household("not-a-uuid")
    household = tablet.register_household(HEAD)
    with pytest.raises(RecordNotFound):
        tablet.person(household.id)  # a household is not a person


def test_services_and_referrals(tablet: Tablet) -> None:
    household = tablet.register_household(HEAD)
    delivery = tablet.record_service(household.id, "food_ration", 2, "kg")
    assert (delivery.service, delivery.quantity, delivery.unit) == ("food_ration", 2, "kg")
    assert tablet.services(household.id) == [delivery]
    with pytest.raises(ValidationError) as caught:
        tablet.record_service(household.id, "pony_ride")
    assert caught.value.field == "service"
    with pytest.raises(ValidationError) as caught:
        tablet.record_service(household.id, "tent", quantity=0)
    assert caught.value.field == "quantity"
    referral = tablet.record_referral(
        household.id, "health", "high", person_id=household.head_person_id
    )
    assert tablet.referrals(household.id) == [referral]
    other = tablet.register_household(HEAD)
    with pytest.raises(ValidationError):
        tablet.record_service(household.id, "tent", person_id=other.head_person_id)
    voided = tablet.void_service(delivery.id, "recorded_in_error")
    assert voided.voided


def test_search_is_transliteration_tolerant(tablet: Tablet) -> None:
    first = tablet.register_household({"given_name": "Muhammad", "family_name": "Rahimi"})
    tablet.register_household({"given_name": "Ahmad", "family_name": "Noori"})
    third = tablet.register_household(
        {"given_name": "Gul", "family_name": "Rahimi", "document_number": "TZ-4471"}
    )
    for query in ("Mohammad", "Mohammed", "muhammad rahimi"):
        assert [p.id for p in tablet.search(query)][:1] == [first.head_person_id], query
    assert {p.id for p in tablet.search("Raheemi")} == {first.head_person_id, third.head_person_id}
    assert tablet.search("tz-4471")[0].id == third.head_person_id
    assert tablet.search("Zebulon") == []
    with pytest.raises(ValidationError):
        tablet.search("x" * 500)
