"""TA entry pages at ``/ta/entries``: list and search, create and edit, history, delete and undo.

Every write goes through ``knowledge.editing`` (the same core as the JSON API), so each one
takes the write lock, checks the version the TA edited, is a revision, keeps the index fresh
and bumps the knowledge-base version; this module renders its refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from knowledge import editing, entry_queries
from knowledge.ask import MAX_QUESTION_CHARS
from knowledge.entry_store import (
    entry_data,
    find_entry,
)
from knowledge.feedback_stats import feedback_by_entry
from knowledge.forum import review
from knowledge.schema import LANGS, EntryData, Lang, cited_keys, is_slug
from knowledge.tables import Entry
from knowledge.text import detect_lang, normalize
from runners import registry
from service import auth, diffs
from service.entry_form import EntryForm, field_label, parse_ids
from service.extensions import core
from service.i18n import translate, ui_lang
from service.presenters import pick_lang

bp = Blueprint("ta_entries", __name__, url_prefix="/ta/entries")
auth.guard_staff_blueprint(bp)

DEFAULT_COURSE = "nyu-dl-f20"
# Saving a new entry whose question an existing entry answers this confidently needs a
# confirmation (the panel in the editor shows the closest entries whatever their score).
DUPLICATE_CONFIDENCE = 0.85
MAX_REVISIONS_SHOWN = 100
PAGE_SIZE = 50  # entries per page of the list


@dataclass
class SimilarEntry:
    slug: str
    question: str
    confidence: float
    likely_duplicate: bool  # an existing entry answers the draft's question confidently


def similar_entries(
    questions: Mapping[str, str] | Mapping[Lang, str], exclude: str | None = None, top_k: int = 3
) -> list[SimilarEntry]:
    """Existing entries closest to the draft's questions (best over its languages)."""
    retriever = core().retriever
    best: dict[str, SimilarEntry] = {}
    for text in questions.values():
        text = normalize(text)[:MAX_QUESTION_CHARS]
        if len(text) < 3:
            continue
        for match in retriever.rank(text, top_k=top_k + 1, lang=detect_lang(text)):
            slug = match.entry.slug
            if slug == exclude or (slug in best and best[slug].confidence >= match.confidence):
                continue
            best[slug] = SimilarEntry(
                slug,
                match.entry.question[pick_lang(match.entry.question, ui_lang())],
                match.confidence,
                match.confidence >= max(DUPLICATE_CONFIDENCE, retriever.model.threshold),
            )
    return sorted(best.values(), key=lambda s: -s.confidence)[:top_k]


def entry_by_slug(session: Session, slug: str, deleted: bool = False) -> Entry | None:
    """The entry a URL names; a malformed slug names none (and never reaches the database)."""
    if not is_slug(slug):
        return None
    return find_entry(session, slug, deleted=deleted)


# -- list -------------------------------------------------------------------
@bp.get("/")
def index() -> str:
    text = normalize(request.args.get("q", "").replace("\x00", ""))[:200]
    query = entry_queries.live_entries(text, answers=True)
    page = request.args.get("page", "1")
    page_number = int(page) if page.isdigit() and 0 < len(page) < 7 else 1
    with core().sessions() as session:
        entries, total = entry_queries.page_of(
            session,
            query,
            Entry.updated_at.desc(),
            Entry.slug,
            page=page_number,
            per_page=PAGE_SIZE,
        )
        deleted = entry_queries.recently_deleted(session)
        stats = feedback_by_entry(session)
        just_deleted = request.args.get("deleted", "")
        undo = next((e for e in deleted if e.slug == just_deleted), None)
        return render_template(
            "ta/entries.html",
            entries=entries,
            deleted=deleted,
            stats=stats,
            q=text,
            undo=undo,
            page=page_number,
            pages=max(1, -(-total // PAGE_SIZE)),
            total=total,
        )


# -- create -----------------------------------------------------------------
@bp.get("/new")
def new() -> str:
    form = EntryForm(course=DEFAULT_COURSE)
    resolves = parse_ids(request.args.get("resolves", ""))
    candidate = parse_ids(request.args.get("candidate", ""))
    if resolves:
        _prefill_from_queue(form, resolves)
    elif candidate:
        _prefill_from_candidate(form, candidate[0])
    elif request.args.get("question"):
        question = " ".join(request.args["question"].split())[:2000]
        form.question[detect_lang(question)] = question
    return _editor(form, mode="new")


def _prefill_from_queue(form: EntryForm, ids: list[int]) -> None:
    """The newest queued question becomes the question; other phrasings become aliases."""
    with core().sessions() as session:
        rows = entry_queries.queued_phrasings(session, ids)
    if not rows:
        return
    form.resolves = sorted(r[0] for r in rows)
    question, aliases = editing.merge_phrasings({}, {}, [r[1] for r in rows], new_languages=True)
    for lang in LANGS:
        form.question[lang] = question.get(lang, form.question[lang])
        form.aliases[lang] = "\n".join(aliases.get(lang, []))


def _prefill_from_candidate(form: EntryForm, candidate_id: int) -> None:
    """A mined candidate's draft: its questions, phrasings as aliases, the staff answer
    citing its source threads, and the experiment that fits."""
    with core().sessions() as session:
        try:
            candidate = review.get_candidate(session, candidate_id)
        except review.CandidateNotFound:
            return
        if candidate.status != "open":
            return
        draft = review.draft(candidate, review.course_code(session, candidate.course_id))
        asked = candidate.asked_count
    form.candidate = candidate_id
    form.slug = draft["slug"]
    form.course = draft["course"] or form.course
    for lang in LANGS:
        form.question[lang] = draft["question"].get(lang, "")
        form.aliases[lang] = "\n".join(draft["aliases"].get(lang, []))
        form.answer[lang] = draft["answer"].get(lang, "")
    form.citations = draft["citations"]
    if draft["runner"] in registry.EXPERIMENTS:
        form.runner = draft["runner"]
    flash(translate("ta.candidate_draft", count=asked), "info")


@bp.post("/new")
def create() -> str | BaseResponse | tuple[str, int]:
    form = EntryForm.from_request(request.form)
    data = form.to_data()
    if data is None:
        return _editor(form, mode="new"), 400
    user = auth.current_user()
    assert user is not None
    with core().sessions() as session:
        if find_entry(session, data.slug, data.course) is not None:
            form.errors["slug"] = translate("ta.slug_taken")
            return _editor(form, mode="new", taken=data.slug), 400
    if not request.form.get("not_duplicate"):
        similar = [s for s in similar_entries(data.question) if s.likely_duplicate]
        if similar:
            return _editor(form, mode="new", duplicates=similar), 409
    try:
        result, answered = editing.create(
            core().sessions,
            data,
            author=user.username,
            resolves=form.resolves,
            candidate=form.candidate,
        )
    except editing.SlugTaken:  # someone created the same slug a moment ago
        form.errors["slug"] = translate("ta.slug_taken")
        return _editor(form, mode="new", taken=data.slug), 409
    except editing.Invalid as exc:
        form.add_errors(exc.errors)
        return _editor(form, mode="new"), 400
    except review.Decided as exc:  # accepted or merged meanwhile by someone else
        form.errors["form"] = translate("ta.candidate_decided", status=exc.status)
        form.candidate = None
        return _editor(form, mode="new"), 409
    except review.CandidateNotFound:
        form.errors["form"] = translate("ta.candidate_gone")
        form.candidate = None
        return _editor(form, mode="new"), 400
    again = result.entry.version > 1  # a deleted entry's slug: it is back, history kept
    flash(translate("ta.created_again" if again else "ta.created", slug=data.slug), "success")
    _warn_uncited(data)
    if answered:
        flash(translate("ta.queue_answered", count=answered), "success")
    return redirect(url_for("ta_entries.edit", slug=data.slug))


# -- edit -------------------------------------------------------------------
@bp.get("/<slug>/edit")
def edit(slug: str) -> str | tuple[str, int]:
    with core().sessions() as session:
        entry = entry_by_slug(session, slug)
        if entry is None:
            return _not_found()
        form = EntryForm.from_data(entry_data(entry), entry.version)
    return _editor(form, mode="edit")


@bp.post("/<slug>/edit")
def update(slug: str) -> str | BaseResponse | tuple[str, int]:
    form = EntryForm.from_request(request.form)
    user = auth.current_user()
    assert user is not None
    with core().sessions() as session:
        entry = entry_by_slug(session, slug)
        if entry is None:
            return _not_found()
        form.slug, form.course = entry.slug, entry.course.code  # never renamed here
    if form.version is None:
        form.errors.setdefault("form", translate("ta.version_missing"))
    data = form.to_data()
    if data is None or form.version is None:
        return _editor(form, mode="edit"), 400
    try:
        result = editing.update(
            core().sessions,
            slug,
            lambda _: data,
            author=user.username,
            expected=[form.version],
            course=form.course,
        )
    except editing.NotFound:
        return _not_found()
    except editing.Invalid as exc:
        form.add_errors(exc.errors)
        return _editor(form, mode="edit"), 400
    except editing.Stale:
        return _stale(form, data)
    if result.outcome == "unchanged":
        flash(translate("ta.unchanged"), "info")
    else:
        flash(translate("ta.saved", slug=slug, version=result.entry.version), "success")
        _warn_uncited(data)
    return redirect(url_for("ta_entries.edit", slug=slug))


def _warn_uncited(data: EntryData) -> None:
    """Saved, but a citation no answer cites: likely a forgotten [@key]."""
    cited = {key for text in data.answer.values() for key in cited_keys(text)}
    uncited = [c.key for c in data.citations if c.key not in cited]
    if uncited:
        flash(translate("ta.uncited", keys=", ".join("@" + k for k in uncited)), "warning")


def _stale(form: EntryForm, draft: EntryData) -> tuple[str, int]:
    """Someone saved first: keep the draft, show what changed, and let the TA save over it."""
    with core().sessions() as session:
        current = find_entry(session, draft.slug, draft.course)
        if current is None:
            form.errors["form"] = translate("ta.deleted_meanwhile")
            return _editor(form, mode="edit"), 409
        last = next(iter(entry_queries.revisions(session, current.id, limit=1)), None)
        stale = {
            "version": current.version,
            "author": last.author if last else "?",
            "at": last.created_at if last else current.updated_at,
            "diff": diffs.diff(
                entry_data(current).canonical(),
                draft.canonical(),
                translate("ta.diff_current", version=current.version),
                translate("ta.diff_draft"),
            ),
        }
        form.version = current.version  # saving again overwrites, knowingly
    return _editor(form, mode="edit", stale=stale), 409


# -- delete and undo --------------------------------------------------------
@bp.post("/<slug>/delete")
def remove(slug: str) -> BaseResponse | tuple[str, int]:
    user = auth.current_user()
    assert user is not None
    try:
        editing.delete(
            core().sessions,
            slug,
            author=user.username,
            expected=_form_version(),
        )
    except editing.NotFound:
        return _not_found()
    except editing.Stale:
        flash(translate("ta.delete_stale"), "error")
        return redirect(url_for("ta_entries.edit", slug=slug))
    flash(translate("ta.deleted", slug=slug), "info")
    return redirect(url_for("ta_entries.index", deleted=slug))


@bp.post("/<slug>/restore")
def undelete(slug: str) -> BaseResponse | tuple[str, int]:
    user = auth.current_user()
    assert user is not None
    try:
        editing.restore(core().sessions, slug, author=user.username)
    except editing.NotFound:
        return _not_found()
    flash(translate("ta.restored", slug=slug), "success")
    return redirect(url_for("ta_entries.edit", slug=slug))


# -- history ----------------------------------------------------------------
@bp.get("/<slug>/history")
def history(slug: str) -> str | tuple[str, int]:
    with core().sessions() as session:
        entry = entry_by_slug(session, slug, deleted=True)
        if entry is None:
            return _not_found()
        revisions = entry_queries.revisions(session, entry.id, limit=MAX_REVISIONS_SHOWN + 1)
        items = []
        for i, rev in enumerate(revisions[:MAX_REVISIONS_SHOWN]):
            previous = revisions[i + 1] if i + 1 < len(revisions) else None
            items.append(
                {
                    "revision": rev,
                    "diff": diffs.diff(
                        previous.snapshot if previous else None,
                        rev.snapshot,
                        f"#{previous.number}" if previous else "-",
                        f"#{rev.number}",
                    ),
                }
            )
        return render_template(
            "ta/history.html", entry=entry, items=items, deleted=entry.deleted_at is not None
        )


@bp.post("/<slug>/revisions/<int:number>/restore")
def restore_revision(slug: str, number: int) -> BaseResponse | tuple[str, int]:
    user = auth.current_user()
    assert user is not None
    try:
        editing.restore_revision(
            core().sessions,
            slug,
            number,
            author=user.username,
            expected=_form_version(),
        )
    except editing.NotFound:
        return _not_found()
    except editing.Stale:
        flash(translate("ta.delete_stale"), "error")
        return redirect(url_for("ta_entries.history", slug=slug))
    except editing.InvalidRevision:
        flash(translate("ta.revision_invalid", number=number), "error")
        return redirect(url_for("ta_entries.history", slug=slug))
    flash(translate("ta.revision_restored", number=number), "success")
    return redirect(url_for("ta_entries.history", slug=slug))


# -- rendering --------------------------------------------------------------
def experiments_catalogue() -> dict[str, dict[str, Any]]:
    """Every registered experiment's title (interface language) and parameter schema."""
    out = {}
    for name in registry.names():
        module = registry.spec(name)
        out[name] = {
            "title": module.TITLE.get(ui_lang(), module.TITLE["en"]),
            "params_schema": module.Params.model_json_schema(),
        }
    return out


def _editor(form: EntryForm, mode: str, **extra: Any) -> str:
    with core().sessions() as session:
        courses = entry_queries.course_codes(session)
    catalogue = experiments_catalogue()
    param_errors = {k[len("param-") :]: v for k, v in form.errors.items() if k.startswith("param-")}
    return render_template(
        "ta/edit.html",
        form=form,
        mode=mode,
        courses=courses or [DEFAULT_COURSE],
        experiments=catalogue,
        editor_data={
            "experiments": catalogue,
            "runner": form.runner,
            "params": form.params,
            "param_errors": param_errors,
            "slug": form.slug if mode == "edit" else None,
            "mode": mode,
        },
        langs=LANGS,
        field_label=field_label,
        **extra,
    )


def _form_version() -> list[int]:
    """The version the TA's page showed, if the form sent one (a check, else none)."""
    version = request.form.get("version", "")
    return [int(version)] if version.isdigit() and len(version) < 10 else []


def _not_found() -> tuple[str, int]:
    page = render_template(
        "error.html",
        title=translate("error.not_found_title"),
        message=translate("error.not_found"),
        back_url=url_for("ta_entries.index"),
        back_label=translate("ta.back_to_entries"),
    )
    return page, 404
