"""The catalogue pages' forms: what people type becomes the workflow's values, or every problem,
by field, with what they typed kept."""

from __future__ import annotations

import datetime as dt

import pytest

from datasets.grant_spec import GrantSpec
from datasets.requested_data import DatasetSchema
from hub.catalogue_service.forms import (
    AmendInput,
    ApplicationContext,
    ApplicationInput,
    ApprovalInput,
    RefusalInput,
    RequestInput,
    read_amendment,
    parse_date,
    parse_members,
    read_application,
    read_approval,
    read_refusal,
)

def table(*columns: tuple[str, str]) -> dict:
    return {"schema": [list(c) for c in columns], "rows": 1, "files": 1, "bytes": 1, "partitions": [],
            "partition_keys": []}


# The newest versions' manifests, as DatasetVersion.tables records them.
SCHEMAS = {
    "hospital_stays": DatasetSchema("hospital_stays", "2024.1", {
        "hospital_stays": table(("stay_id", "string"), ("patient_id", "string"), ("admission_date", "date32[day]"),
                                ("main_diagnosis", "string"), ("length_of_stay", "int64"))},
        {"stay_id": "direct", "patient_id": "direct", "admission_date": "indirect"}),
    "claims": DatasetSchema("claims", "2024.1", {
        ".": table(("patient_id", "string"), ("care_date", "date32[day]"), ("atc_code", "string"))}, {}),
    "cohort": DatasetSchema("cohort", "2024.1", {
        "cohort": table(("study_id", "string"), ("inclusion_date", "date32[day]"), ("age", "int64")),
        "linkage": table(("study_id", "string"), ("patient_id", "string"))}, {}),
}
CONTEXT = ApplicationContext(datasets=frozenset({"claims", "hospital_stays", "cohort"}),
                             people=frozenset({"alice", "erin", "bob"}), projects=frozenset({"cardio-risk"}),
                             schemas=SCHEMAS)
STAYS = ["hospital_stays:hospital_stays:main_diagnosis", "hospital_stays:hospital_stays:admission_date"]


def typed(**changes) -> ApplicationInput:
    values = dict(slug="stroke-care", title="Stroke care", lay_summary="After a stroke.", purpose="Pathways.",
                  public_interest="Better care.", datasets=["hospital_stays"], members="erin",
                  starts_on="2026-12-01", ends_on="2027-11-30", request=RequestInput(variables=list(STAYS)))
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
    assert form.specs == {"hospital_stays": {"tables": {"hospital_stays": ["main_diagnosis", "admission_date"]},
                                             "period": None, "justification": None}}


def test_the_variables_and_the_period_asked_for_become_the_grant_spec():
    request = RequestInput.from_arguments({
        "variables": [*STAYS, "claims:.:atc_code"], "period_from:claims": ["2022-01-01"],
        "period_until:claims": ["2023-12-31"], "justification:claims": [" "], "slug": ["x"]})
    form, problems = read_application(typed(datasets=["hospital_stays"], request=request), CONTEXT, "alice")
    assert problems == {}
    assert form.datasets == ["claims", "hospital_stays"]  # a variable ticked asks for its dataset
    assert form.specs["claims"] == {"tables": {".": ["atc_code"]}, "justification": None,
                                    "period": {"from": dt.date(2022, 1, 1), "until": dt.date(2023, 12, 31)}}


def test_a_dataset_without_variables_a_missing_column_and_a_half_period_are_refused_where_they_are():
    request = RequestInput(variables=["hospital_stays:hospital_stays:blood_group"],
                           period_from={"claims": "2022-01-01"})
    form, problems = read_application(typed(datasets=["hospital_stays", "claims"], request=request), CONTEXT, "alice")
    assert form is None
    assert problems["variables:claims"].params == {"dataset": "claims"}
    assert problems["variables:hospital_stays"].message.startswith("Table {table} has no column {columns}")
    assert problems["variables:hospital_stays"].params["columns"] == "blood_group"
    request = RequestInput(variables=list(STAYS), period_from={"hospital_stays": "2023-01-01"},
                           period_until={"hospital_stays": "2022-01-01"})
    _, problems = read_application(typed(request=request), CONTEXT, "alice")
    assert set(problems) == {"period:hospital_stays"}
    assert problems["period:hospital_stays"].message == "The period ends ({end}) before it starts ({start})."


def test_a_direct_identifier_is_asked_for_only_with_a_justification():
    request = RequestInput(variables=[*STAYS, "hospital_stays:hospital_stays:stay_id"])
    _, problems = read_application(typed(request=request), CONTEXT, "alice")
    assert set(problems) == {"justification:hospital_stays"}
    request.justification["hospital_stays"] = "Stays are followed across transfers."
    form, problems = read_application(typed(request=request), CONTEXT, "alice")
    assert problems == {} and form.specs["hospital_stays"]["justification"] == "Stays are followed across transfers."
    # the person key is never handed out: asking for it needs no justification, it becomes the pseudonym
    request = RequestInput(variables=[*STAYS, "hospital_stays:hospital_stays:patient_id"])
    assert read_application(typed(request=request), CONTEXT, "alice")[1] == {}


def test_a_cohort_is_linked_through_its_producers_table_which_is_never_offered():
    request = RequestInput(variables=["cohort:cohort:study_id", "cohort:cohort:age"],
                           justification={"cohort": "The study identifier links the cohort to the claims."})
    form, problems = read_application(typed(datasets=[], request=request), CONTEXT, "alice")
    assert problems == {} and form.specs["cohort"]["linkage"] == "linkage"


def test_a_recorded_request_fills_the_stewards_form_again():
    spec = GrantSpec(tables={"hospital_stays": ("admission_date", "main_diagnosis")},
                     period=(dt.date(2022, 1, 1), dt.date(2022, 12, 31)), justification="Because.")
    request = RequestInput.of_specs({"hospital_stays": spec.to_json()})
    assert sorted(request.variables) == sorted(STAYS)
    assert (request.period_from, request.period_until) == ({"hospital_stays": "2022-01-01"},
                                                            {"hospital_stays": "2022-12-31"})
    specs, problems = read_amendment(AmendInput(["hospital_stays"], request), SCHEMAS)
    assert problems == {} and specs["hospital_stays"]["justification"] == "Because."
    specs, problems = read_amendment(AmendInput([], RequestInput()), SCHEMAS)
    assert specs == {} and set(problems) == {"amend"}


def test_every_problem_is_attached_to_its_field():
    raw = typed(slug="Cardio Risk!", title=" ", purpose="", datasets=[], members="erin, ghost, nobody",
                starts_on="2027-06-30", ends_on="2027-01-01", request=RequestInput())
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


def test_the_steward_writes_cohort_criteria_one_a_line_and_a_wrong_one_is_refused_on_its_field():
    request = RequestInput(variables=list(STAYS), criteria={"hospital_stays": (
        "hospital_stays.main_diagnosis prefix I21, I22\n\nhospital_stays.length_of_stay >= 2")})
    specs, problems = read_amendment(AmendInput(["hospital_stays"], request), SCHEMAS)
    assert problems == {}
    assert specs["hospital_stays"]["criteria"] == [
        {"table": "hospital_stays", "column": "main_diagnosis", "op": "prefix", "value": ["I21", "I22"]},
        {"table": "hospital_stays", "column": "length_of_stay", "op": ">=", "value": 2}]  # a number, as the column
    spec = GrantSpec.from_json({**specs["hospital_stays"], "period": None, "linkage": None,
                                "criteria": specs["hospital_stays"]["criteria"], "tables": {"hospital_stays": ["a"]}})
    assert RequestInput.of_specs({"hospital_stays": spec.to_json()}).criteria["hospital_stays"] == (
        "hospital_stays.main_diagnosis prefix I21, I22\nhospital_stays.length_of_stay >= 2")
    for text, message in (("main_diagnosis is heart", "Line {n} is not a criterion"),
                          ("hospital_stays.blood_group = A", "Criterion {n}: table {table} has no column {column}."),
                          ("hospital_stays.length_of_stay prefix 2", "Criterion {n}: prefix applies to codes")):
        request.criteria["hospital_stays"] = text
        _, problems = read_amendment(AmendInput(["hospital_stays"], request), SCHEMAS)
        assert list(problems) == ["criteria:hospital_stays"] and problems["criteria:hospital_stays"].message.startswith(
            message), text
