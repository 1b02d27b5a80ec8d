"""The app's handle on the knowledge core (engine, sessions, retriever)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from knowledge.ask import Retriever
from knowledge.db import make_engine, make_sessionmaker
from knowledge.embedders import inference_threads
from knowledge.index_sync import IndexOptions


@dataclass
class Core:
    engine: Engine
    sessions: sessionmaker[Session]
    retriever: Retriever


def index_options(config: Mapping[str, Any]) -> IndexOptions:
    return IndexOptions(
        snapshot_dir=Path(config["INDEX_SNAPSHOT_DIR"])
        if config.get("INDEX_SNAPSHOT_DIR")
        else None,
        snapshot_min_units=int(config["INDEX_SNAPSHOT_MIN_UNITS"]),
        ann_min_units=int(config["INDEX_ANN_MIN_UNITS"]),
        delta_max=int(config["INDEX_DELTA_MAX"]),
        threads=inference_threads(),
    )


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    sessions = make_sessionmaker(engine)
    retriever = Retriever(sessions, options=index_options(app.config))
    app.extensions["core"] = Core(engine, sessions, retriever)


def core() -> Core:
    return current_app.extensions["core"]
