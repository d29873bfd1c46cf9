"""The catalogue pages' forms: what people type becomes the workflow's values, or every problem,
by field, with what they typed kept."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.catalogue_service.forms import (
    ApplicationContext,
    ApplicationInput,
    ApprovalInput,
    RefusalInput,
    parse_date,
    parse_members,
    read_application,
    read_approval,
    read_refusal,
)

CONTEXT = ApplicationContext(datasets=frozenset({"claims", "hospital_stays"}),
                             people=frozenset({"alice", "erin", "bob"}), projects=frozenset({"cardio-risk"}))


def typed(**changes) -> ApplicationInput:
    values = dict(slug="stroke-care", title="Stroke care", lay_summary="After a stroke.", purpose="Pathways.",
                  public_interest="Better care.", datasets=["hospital_stays"], members="erin",
                  starts_on="2026-12-01", ends_on="2027-11-30")
    return ApplicationInput(**{**values, **changes})


@pytest.mark.parametrize(("text", "members"), [
    ("", []), ("erin", ["erin"]), (" Erin , bob,,", ["erin", "bob"]), ("erin bob; erin", ["erin", "bob"]),
])
def test_members_are_usernames_separated_by_commas(text, members):
    assert parse_members(text) == members


def test_dates_are_read_as_the_date_field_sends_them():
    assert parse_date(" 2027-01-31 ") == dt.date(2027, 1, 31)
    for bad in ("31/01/2027", "2027-02-30", "tomorrow", ""):
        with pytest.raises(ValueError):
            parse_date(bad)


def test_a_good_application_becomes_the_workflow_form():
    form, problems = read_application(typed(slug=" Stroke-Care ", members="erin, alice"), CONTEXT, "alice")
    assert problems == {}
    assert form.slug == "stroke-care" and form.datasets == ["hospital_stays"]
    assert form.members == ["erin"]  # the applicant is a member already, as principal investigator
    assert (form.starts_on, form.ends_on) == (dt.date(2026, 12, 1), dt.date(2027, 11, 30))


def test_every_problem_is_attached_to_its_field():
    raw = typed(slug="Cardio Risk!", title=" ", purpose="", datasets=[], members="erin, ghost, nobody",
                starts_on="2027-06-30", ends_on="2027-01-01")
    form, problems = read_application(raw, CONTEXT, "alice")
    assert form is None
    assert set(problems) == {"slug", "title", "purpose", "datasets", "members", "ends_on"}
    assert problems["title"].message == "This field is required."
    assert problems["members"].params == {"names": "ghost, nobody"}
    assert problems["ends_on"].params == {"ends_on": "2027-01-01", "starts_on": "2027-06-30"}
    assert raw.members == "erin, ghost, nobody"  # what was typed is untouched, to be shown again


def test_a_taken_short_name_an_unknown_dataset_and_a_bad_date_are_refused():
    _, problems = read_application(typed(slug="cardio-risk", datasets=["imaging"], starts_on="01/12/2026"),
                                   CONTEXT, "alice")
    assert problems["slug"].params == {"slug": "cardio-risk"}
    assert problems["datasets"].params == {"names": "imaging"}
    assert problems["starts_on"].params == {"value": "01/12/2026"}
    assert "ends_on" not in problems


def test_slugs_must_be_usable_as_server_and_folder_names():
    for slug in ("ab", "-stroke", "stroke-", "stroke_care", "stroke/../x", "a" * 65):
        assert "slug" in read_application(typed(slug=slug), CONTEXT, "alice")[1], slug


def test_an_approval_needs_its_reference_and_a_period_in_order():
    approval, problems = read_approval(ApprovalInput(" CESREES-1 ", "2026-12-01", "2027-11-30"))
    assert problems == {} and approval.approval_reference == "CESREES-1"
    assert approval.ends_on == dt.date(2027, 11, 30)
    approval, problems = read_approval(ApprovalInput("", "2027-12-01", "2027-11-30"))
    assert approval is None and set(problems) == {"approval_reference", "ends_on"}


def test_a_refusal_needs_its_reason():
    assert read_refusal(RefusalInput("  Too broad.  ")) == ("Too broad.", {})
    reason, problems = read_refusal(RefusalInput(" "))
    assert reason is None and problems["reason"].message == "A refusal gives its reason, for the applicant."
