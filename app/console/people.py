"""Person search, candidates, the history timeline and the bail brief.

Every request asks the broker again (``GetOffenderHistory``): the person
searched for travels in POST forms only, never in a URL, and nothing of the
answer outlives the response.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import markupsafe
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from app import brief, history_view
from app.console import broker_calls
from app.console.pages import config_of, gate, off_loop, render
from app.console.security import csp_for_inline_styles
from app.timeline_chart import timeline_svg

if TYPE_CHECKING:
    from starlette.datastructures import FormData
    from starlette.requests import Request

    from accord.v1 import broker_pb2

#: The search fields a form carries, as ``BrokerClient.history`` names them.
FIELDS = ("fps_number", "surname", "given_names", "birth_date", "birth_place")
#: Longest value a search field takes (an FPS number is 8, a name far less than this).
MAX_FIELD = 100


def _search(form: FormData) -> dict[str, str]:
    return {k: str(form.get(k, "")).strip()[:MAX_FIELD] for k in FIELDS}


def person_fields(history: broker_pb2.HistoryResponse, asked: dict[str, str]) -> dict[str, str]:
    """What a follow-up form (history, brief, PDF) carries to ask for the same person."""
    fps = history.identity.get("fps_number", "") or asked.get("fps_number", "")
    if fps and "*" not in fps:  # a masked number would find no one
        return {"fps_number": fps}
    return {k: v for k, v in asked.items() if k != "fps_number" and v}


async def _history(
    request: Request, person: dict[str, str]
) -> tuple[broker_pb2.HistoryResponse | None, dict[str, str], str]:
    asked = _search(await request.form())
    try:
        with broker_calls.client(config_of(request), person) as broker:
            found = await off_loop(
                lambda: broker.history(
                    fps_number=asked["fps_number"],
                    surname=asked["surname"],
                    given_names=asked["given_names"],
                    birth_date=asked["birth_date"],
                    birth_place=asked["birth_place"],
                )
            )
    except broker_calls.BROKER_ERRORS as exc:
        return None, asked, broker_calls.failure_text(exc)
    return found, asked, ""


async def search_page(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    return render(request, "search.html.j2")


async def search(request: Request) -> Response:
    """A search: the history when it names one person, else the candidates."""
    person = gate(request)
    if isinstance(person, Response):
        return person
    found, asked, error = await _history(request, person)
    if found is None:
        return render(request, "search.html.j2", status_code=400, error=error, asked=asked)
    if found.found:
        return _history_page(request, found, asked)
    return render(request, "candidates.html.j2", history=found, asked=asked)


async def history(request: Request) -> Response:
    person = gate(request)
    if isinstance(person, Response):
        return person
    found, asked, error = await _history(request, person)
    if found is None:
        return render(request, "search.html.j2", status_code=400, error=error, asked=asked)
    return _history_page(request, found, asked)


def _history_page(
    request: Request, found: broker_pb2.HistoryResponse, asked: dict[str, str]
) -> Response:
    return render(
        request,
        "history.html.j2",
        history=found,
        follow=person_fields(found, asked),
        # the columns the role sees: one empty in every file takes no room
        file_columns=[
            c for c in history_view.FILE_COLUMNS if any(f.fields.get(c) for f in found.files)
        ],
        link_label=history_view.link_label,
        # the chart is markup the project draws, escaping every text it holds
        chart=markupsafe.Markup(timeline_svg(found.timeline)) if found.timeline else "",  # noqa: S704
    )


async def brief_html(request: Request) -> Response:
    """The printable bail brief: the same page ``accord history --format html`` writes."""
    person = gate(request)
    if isinstance(person, Response):
        return person
    found, asked, error = await _history(request, person)
    if found is None:
        return render(request, "search.html.j2", status_code=400, error=error, asked=asked)
    page = brief.as_html(found)
    return HTMLResponse(page, headers={"content-security-policy": csp_for_inline_styles(page)})


async def brief_pdf(request: Request) -> Response:
    """The bail brief as a PDF download, printed by headless Chromium in a
    private temporary folder removed before the response leaves."""
    person = gate(request)
    if isinstance(person, Response):
        return person
    found, asked, error = await _history(request, person)
    if found is None:
        return render(request, "search.html.j2", status_code=400, error=error, asked=asked)
    try:
        pdf = await off_loop(lambda: _print(brief.as_html(found)))
    except brief.BriefError as exc:
        return render(request, "search.html.j2", status_code=503, error=str(exc), asked=asked)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "content-disposition": f'attachment; filename="bail-brief-{found.history_id}.pdf"'
        },
    )


def _print(html: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="accord-console-") as tmp:
        out = Path(tmp) / "brief.pdf"
        brief.print_pdf(html, out)
        return out.read_bytes()


ROUTES = [
    Route("/search", search_page, methods=["GET"]),
    Route("/search", search, methods=["POST"]),
    Route("/history", history, methods=["POST"]),
    Route("/brief", brief_html, methods=["POST"]),
    Route("/brief.pdf", brief_pdf, methods=["POST"]),
]
