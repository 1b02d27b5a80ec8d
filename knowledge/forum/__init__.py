"""Forum mining: read a course's exported forum or chat history, keep the questions
students asked and the staff's answers, group repeated questions across wording and
language, and store them as candidate entries for TAs to review (nothing is published
without a TA). ``kb mine`` runs it; ``knowledge.forum.mining`` is the pipeline."""
