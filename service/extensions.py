"""The app's handle on the knowledge core (engine, sessions, retriever)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from knowledge.ask import Retriever
from knowledge.db import make_engine, make_sessionmaker


@dataclass
class Core:
    engine: Engine
    sessions: sessionmaker[Session]
    retriever: Retriever


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    sessions = make_sessionmaker(engine)
    app.extensions["core"] = Core(engine, sessions, Retriever(sessions))


def core() -> Core:
    return current_app.extensions["core"]
