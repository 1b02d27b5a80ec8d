"""Request and response models of the JSON API.

Declared at the routes (``@api.validate`` in service/openapi.py), they validate requests
and generate the OpenAPI document: what a model says is what the code enforces.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool
from pydantic.json_schema import (
    DEFAULT_REF_TEMPLATE,
    GenerateJsonSchema,
    JsonSchemaMode,
    JsonSchemaValue,
)
from pydantic_core import core_schema

from knowledge.api_tokens import SCOPES
from knowledge.ask import MAX_QUESTION_CHARS
from knowledge.schema import SLUG_RE, EntryData, Lang, RunnerRef
from runners import registry
from runners.result_store import DEFAULT_SEED

MAX_INT32 = 2**31 - 1  # ids, seeds and versions are 32-bit integer columns
# One entity tag as GET returned it ("3"); W/"3" and a bare 3 are taken for the same version.
# "*" passes the pattern and is refused with 428: it protects against nothing.
IF_MATCH_PATTERN = r'^\s*(?:\*|(?:W/)?(?:"[0-9]{1,18}"|[0-9]{1,18}))\s*$'
# What str.strip() removes (str.isspace()): checked by a test.
SPACE_CHARS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Characters that the API drops (NUL) or knowledge.text.normalize() turns into nothing
# (whitespace after NFKC): a question made only of these is blank. Checked by a test.
NOT_BLANK = f"[^\\x00{SPACE_CHARS}]"
# Control characters other than tab, newline and carriage return: refused in entry bodies.
CONTROL_CHARS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"


# Strict: "3" and true are not integers (bool is an int subclass in Python). A whole
# number such as 3.0 is read as 3 when the body is parsed (service/openapi._number).
JsonInt = Annotated[int, Strict()]
# Query strings and headers are never null, and the API refuses NUL in them.
QueryText = Annotated[str, Field(pattern=r"^[^\x00]*$")]
LangText = dict[Lang, str]


class Body(BaseModel):
    """A JSON request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class ParameterSchema(GenerateJsonSchema):
    """Query parameters and headers are strings or absent, never null."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


class SchemaBy(BaseModel):
    """A model whose JSON schema (the document's, via spectree) comes from its own
    generator ``schema_by``."""

    schema_by: ClassVar[type[GenerateJsonSchema]] = GenerateJsonSchema

    @classmethod
    def model_json_schema(
        cls,
        by_alias: bool | None = True,
        ref_template: str = DEFAULT_REF_TEMPLATE,
        schema_generator: type[GenerateJsonSchema] = GenerateJsonSchema,
        mode: JsonSchemaMode = "validation",
        **kwargs: Any,
    ) -> dict[str, Any]:
        return super().model_json_schema(by_alias, ref_template, cls.schema_by, mode, **kwargs)


class Parameters(SchemaBy):
    schema_by = ParameterSchema  # absent, not null


class Query(Parameters):
    """Query parameters: others are ignored, as browsers and proxies add their own."""

    model_config = ConfigDict(extra="ignore")


# -- requests ---------------------------------------------------------------------------


class AskRequest(Body):
    question: str = Field(
        max_length=100_000,  # the core says question_too_long beyond MAX_QUESTION_CHARS
        description=f"Not blank; at most {MAX_QUESTION_CHARS} characters after Unicode "
        "(NFKC) and whitespace normalisation.",
        json_schema_extra={"maxLength": MAX_QUESTION_CHARS, "pattern": NOT_BLANK},
    )
    course: str | None = Field(None, max_length=64)
    lang: Lang | None = None
    top_k: Annotated[JsonInt, Field(ge=1, le=10)] = 3


class FeedbackRequest(Body):
    """One vote per asked question: sending another changes it."""

    question_id: Annotated[JsonInt, Field(ge=1, le=MAX_INT32)]
    helpful: StrictBool
    comment: str | None = Field(None, max_length=2000, description="Why (optional).")
    suggested_slug: Annotated[str, Field(pattern=SLUG_RE, max_length=120)] | None = Field(
        None, description="The entry that should have answered (e.g. a declined question)."
    )


class RunRequest(Body):
    optional_body: ClassVar[bool] = True  # POST without a body runs the defaults

    params: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the entry's experiment parameters."
    )
    seed: Annotated[JsonInt, Field(ge=0, le=MAX_INT32)] = DEFAULT_SEED


class EntryListQuery(Query):
    q: QueryText = Field(
        "", description="Text in the slug, question, aliases or tags (first 200 characters)."
    )
    course: QueryText | None = None
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(20, ge=1, le=100)


class CandidateListQuery(Query):
    course: QueryText | None = None
    status: Literal["open", "accepted", "merged", "rejected"] | None = Field(
        "open", description="Candidates in this state (default: open ones)."
    )
    kind: Literal["answered", "unanswered"] | None = Field(
        None,
        description="answered: staff answered it; unanswered: asked at least twice with no "
        "staff answer (listed apart). Both by default.",
    )
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(20, ge=1, le=100)


class UnansweredQuery(Query):
    course: QueryText | None = None
    page: int = Field(1, ge=1, le=100_000)
    per_page: int = Field(20, ge=1, le=100)


class CourseQuery(Query):
    course: QueryText | None = Field(
        None, description="Course code, when a slug exists in more than one course."
    )


class AnswerQuery(CourseQuery):
    lang: Lang | None = Field(
        None, description="The answer's language, when the entry has it (else the other)."
    )


class DeleteQuery(CourseQuery):
    version: Annotated[int, Field(ge=1, le=MAX_INT32)] | None = Field(
        None, description="The version you are deleting (stale: 409)."
    )


class IfMatch(Parameters):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    if_match: Annotated[str, Field(pattern=IF_MATCH_PATTERN)] | None = Field(
        None,
        alias="If-Match",
        description='The ETag of the version you edited, e.g. "3" (a bare 3 is accepted '
        "too). Stale: 412. Without it (or a version): 428.",
        examples=['"1"'],
    )


class RunnerIn(RunnerRef):
    model_config = ConfigDict(json_schema_extra=lambda s: runner_schema_rules(s))


class EntryTextSchema(GenerateJsonSchema):
    """JSON Schema of entry bodies: every string also states that it holds no control
    characters and, when it is stripped before its length is checked, that it has that
    many characters between its first and last non-blank ones."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        out = super().str_schema(schema)
        rules = [f"^[^{CONTROL_CHARS}]*$"]
        least = schema.get("min_length") or 0
        if schema.get("strip_whitespace") and least:
            edge = f"[^{SPACE_CHARS}]"
            rules.append(edge if least == 1 else f"{edge}[\\s\\S]{{{least - 2},}}{edge}")
        if "pattern" in out:
            rules.append(out.pop("pattern"))
        if len(rules) == 1:
            out["pattern"] = rules[0]
        else:  # one pattern per schema: all of them must match
            out["allOf"] = [{"pattern": rule} for rule in rules]
        return out


class EntryCreate(SchemaBy, EntryData):
    """A new entry. Question and answer in the same languages, unique citation keys, every
    [@key] in an answer cited, runner.params valid for the experiment (GET
    /api/v1/experiments), and no control characters in any string."""

    model_config = ConfigDict(json_schema_extra=lambda s: entry_schema_rules(s))

    schema_by = EntryTextSchema  # the rules JSON Schema can state, in every nested string

    runner: RunnerIn | None = None


class EntryUpdate(EntryCreate):
    """The whole entry as it should be after the update. slug and course may be left out;
    if given, they must be the entry's own (entries do not move). version, if given, is
    the version you edited: a stale one gets 409."""

    slug: str = ""
    course: str = ""
    version: Annotated[JsonInt, Field(ge=1, le=MAX_INT32)] | None = None


def entry_schema_rules(schema: dict[str, Any]) -> None:
    """Question and answer: at least one language, the same languages in both."""
    props = schema["properties"]
    for name in ("question", "answer"):
        props[name]["minProperties"] = 1
    schema["anyOf"] = [
        {
            "properties": {
                name: {"required": list(langs), "maxProperties": len(langs)}
                for name in ("question", "answer")
            }
        }
        for langs in (("en",), ("ja",), ("en", "ja"))
    ]


def runner_schema_rules(schema: dict[str, Any]) -> None:
    schema["properties"]["name"] = {"enum": registry.names(), "type": "string"}
    schema["allOf"] = [
        {
            "if": {"properties": {"name": {"const": name}}},
            "then": {"properties": {"params": registry.spec(name).Params.model_json_schema()}},
        }
        for name in registry.names()
    ]


# -- responses --------------------------------------------------------------------------


class CitationInfo(BaseModel):
    number: int = Field(ge=1)
    key: str
    title: str
    authors: list[str]
    year: int
    venue: str
    url: str | None = Field(json_schema_extra={"format": "uri"})
    doi: str | None = None


class Runner(BaseModel):
    name: str
    params: dict[str, Any]


class Match(BaseModel):
    slug: str
    course: str
    question: str
    score: float


class Answer(BaseModel):
    slug: str
    course: str
    question: str
    answer_markdown: str
    answer_html: str = Field(description="Sanitised HTML.")
    lang: Lang
    citations: list[CitationInfo]
    runner: Runner | None
    url: str = Field(json_schema_extra={"format": "uri"})


class CourseHelp(BaseModel):
    text: str | None = Field(description="Where such questions belong, in the asked language.")
    url: str | None


class AskResponse(BaseModel):
    """The answer is null when the service abstains; the question is then queued for TAs.
    ``off_topic``: declined with no entry close to it (logistics, other subjects); then
    ``course_help`` says where such questions go, when the course has said."""

    abstained: bool
    confidence: float = Field(ge=0, le=1)
    answer: Answer | None
    matches: list[Match]
    question_id: int | None
    lang: Lang
    did_you_mean: list[Match]
    off_topic: bool
    course_help: CourseHelp | None


class EntrySummary(BaseModel):
    slug: str = Field(pattern=SLUG_RE)
    course: str
    question: LangText
    tags: list[str]
    runner: Runner | None
    version: int = Field(ge=1)
    updated_at: str = Field(description="ISO 8601 time of the last write.")
    url: str = Field(description="The entry's web page.", json_schema_extra={"format": "uri"})


class RenderedAnswer(BaseModel):
    markdown: str
    html: str = Field(description="Sanitised HTML.")


class EntryDetail(EntrySummary):
    aliases: dict[Lang, list[str]]
    answer: dict[Lang, RenderedAnswer]
    citations: list[CitationInfo]


class EntryList(BaseModel):
    items: list[EntrySummary]
    page: int
    per_page: int
    total: int


class CandidateSource(BaseModel):
    forum: str
    thread_id: str
    url: str | None
    date: str | None = Field(description="The day the question was asked (ISO 8601).")
    title: str


class Candidate(BaseModel):
    id: int
    course: str
    status: Literal["open", "accepted", "merged", "rejected"]
    kind: Literal["answered", "unanswered"]
    existing_entry: str | None = Field(
        description="An entry that already answers it: the proposal is its phrasings as aliases."
    )
    asked_count: int = Field(description="How many threads asked it.")
    votes: int
    staff_answered: bool
    score: float = Field(description="Rank: askings, then votes, then a staff answer.")
    question: LangText = Field(description="A draft question per language the group used.")
    answer: LangText = Field(description="The staff answer as a draft (may be empty).")
    phrasings: dict[Lang, list[str]] = Field(description="How students asked it (aliases).")
    sources: list[CandidateSource]
    suggested_experiment: str | None
    entry_slug: str | None = Field(description="The entry it became (accepted or merged).")


class CandidateList(BaseModel):
    candidates: list[Candidate]
    page: int
    per_page: int
    total: int


class QueuedQuestion(BaseModel):
    id: int = Field(description="The ask's question_id.")
    question: str
    lang: Lang
    asked_at: str
    nearest_entry: str | None = Field(description="The closest entry when it was declined.")
    confidence: float


class UnansweredGroup(BaseModel):
    count: int
    langs: list[Lang]
    questions: list[QueuedQuestion] = Field(description="Newest first.")


class UnansweredList(BaseModel):
    groups: list[UnansweredGroup] = Field(description="The group with the newest question first.")
    page: int
    per_page: int
    total: int = Field(description="Groups in all.")
    open_questions: int = Field(description="Declined questions not yet answered or dismissed.")


class FeedbackResponse(BaseModel):
    id: int
    question_id: int
    helpful: bool
    suggested_slug: str | None = None


class Experiment(BaseModel):
    name: str
    title: LangText
    claim: LangText
    time_budget_s: float
    params_schema: dict[str, Any] = Field(description="JSON Schema of the params.")


class ExperimentList(BaseModel):
    items: list[Experiment]


class RunError(BaseModel):
    code: str | None
    message: str | None


class Provenance(BaseModel):
    experiment: str
    params: dict[str, Any]
    seed: int
    code_hash: str
    torch_version: str
    isolation: str | None = None
    attempts: int | None = None
    duration_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    created_at: str | None = None
    finished_at: str | None = None


class MetricLabel(BaseModel):
    en: str
    ja: str
    unit: str = Field(description="Unit after the value in English (empty: none).")
    unit_ja: str = Field(description="Unit after the value in Japanese.")


class Run(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "timed_out"]
    experiment: str
    entry_slug: str | None
    params: dict[str, Any]
    seed: int
    elapsed_s: float | None
    metrics: dict[str, float | bool] | None
    series: dict[str, list[float]] | None
    finding: LangText | None
    supports_claim: bool | None
    as_expected: bool | None = Field(
        description="Whether the run came out as the answer predicts for these parameters "
        "(the claim shows where it says it will, and not where it says it will not); null "
        "when the answer does not say."
    )
    figures: list[str] = Field(description="URLs of the run's PNG figures (English text).")
    figures_by_lang: dict[Lang, list[str]] = Field(
        description="The same figures with their text in each language they were drawn in."
    )
    metric_labels: dict[str, MetricLabel] = Field(
        description="A label and unit in each language for each metric the experiment names."
    )
    verdict_metrics: list[str] = Field(
        description="The metrics the verdict (supports_claim) is computed from, to show first."
    )
    error: RunError | None
    provenance: Provenance
    url: str


class RunStarted(Run):
    cached: bool = Field(description="An identical run already succeeded: its result.")


class IndexHealth(BaseModel):
    loaded: bool
    version: int | None
    models: list[str]
    # Where the base came from ("snapshot" or "database"), its version, how many changed
    # entries are caught up on top of it, and whether a graph finds the candidates.
    source: str | None = None
    base_version: int | None = None
    changed_entries: int | None = None
    graph: bool | None = None


class QueueHealth(BaseModel):
    ok: bool
    backend: Literal["sqlite", "redis"]
    pending: int | None = None
    error: str | None = None


class SandboxHealth(BaseModel):
    isolation: Literal["bubblewrap", "rlimits-only"]
    bwrap: str | None = None
    reason: str | None = None


class Health(BaseModel):
    status: Literal["ok"]
    database: str
    entries: int
    knowledge_version: int
    index: IndexHealth
    queue: QueueHealth
    sandbox: SandboxHealth


class FieldError(BaseModel):
    field: str
    code: str
    message: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable.")
    message: str
    field: str | None = Field(None, description="The request field at fault.")
    errors: list[FieldError] | None = Field(
        None, description="Every invalid field (validation_failed)."
    )
    retry_after: int | None = Field(None, description="Seconds (rate_limited).")
    current_version: int | None = Field(None, description="The stored version (412, 409).")
    required_scope: str | None = Field(None, json_schema_extra={"enum": list(SCOPES)})


class Error(BaseModel):
    """Every error under /api: {"error": {"code", "message", "field"?}}."""

    error: ErrorBody


class Document(BaseModel):
    """The OpenAPI document."""

    model_config = ConfigDict(extra="allow")
