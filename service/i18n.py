"""Interface strings in English and Japanese, and the choice of the interface language.

The interface language comes from the ``ra_lang`` cookie (set by the language switch),
else from Accept-Language, else English. Answers have their own language: the one the
question was asked in, where the entry has it.
"""

from __future__ import annotations

from flask import Flask, g, request
from werkzeug.wrappers import Response as BaseResponse

LANGS: tuple[str, ...] = ("en", "ja")
COOKIE = "ra_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

# key -> (English, Japanese). Keys are "<section>.<name>"; pages hand whole sections to JS.
STRINGS: dict[str, tuple[str, str]] = {
    # -- common -------------------------------------------------------------
    "common.skip": ("Skip to the main content", "本文へ移動"),
    "common.nav": ("Main", "メイン"),
    "common.switch_lang": ("日本語", "English"),
    "common.network_error": (
        "The service could not be reached. Please try again.",
        "サービスに接続できませんでした。もう一度お試しください。",
    ),
    "common.request_failed": ("The request failed.", "リクエストに失敗しました。"),
    "lang.en": ("English", "英語"),
    "lang.ja": ("Japanese", "日本語"),
    # -- chat ---------------------------------------------------------------
    "chat.page_title": ("Ask", "質問する"),
    "chat.title": ("Ask a question about the course", "授業について質問しましょう"),
    "chat.lead": (
        "Ask in English or Japanese. Answers are written by the course staff, cite their "
        "sources, and many come with a small experiment you can run.",
        "英語でも日本語でも質問できます。回答は授業スタッフが書いたもので、出典が付いて"
        "おり、多くは実際に動かせる小さな実験付きです。",
    ),
    "chat.try": ("For example:", "たとえば："),
    "chat.conversation": ("Conversation", "会話"),
    "chat.your_question": ("Your question", "質問"),
    "chat.placeholder": ("Type your question…", "質問を入力してください…"),
    "chat.ask": ("Ask", "質問する"),
    "chat.keys_hint": (
        "Enter sends, Shift+Enter starts a new line.",
        "Enter で送信、Shift+Enter で改行します。",
    ),
    "chat.noscript": (
        "The chat needs JavaScript. Every answer also has its own page, "
        "e.g. /entries/double-descent.",
        "チャットには JavaScript が必要です。"
        "各回答には専用ページもあります（例：/entries/double-descent）。",
    ),
    "chat.empty": ("Please type a question first.", "先に質問を入力してください。"),
    "chat.searching": ("Looking for the answer…", "回答を探しています…"),
    "chat.answered": ("Answer: {title}", "回答：{title}"),
    "chat.declined_status": (
        "No curated answer yet; the question was sent to the TAs.",
        "まだ回答がありません。質問は TA に送られました。",
    ),
    "chat.declined_title": (
        "There is no curated answer to this question yet.",
        "この質問にはまだ用意された回答がありません。",
    ),
    "chat.declined_body": (
        "Thank you for asking. Your question has been passed on to the TAs, who use it to "
        "write new answers. In the meantime, these are the closest questions we have:",
        "質問ありがとうございます。この質問は TA に届けられ、新しい回答づくりに使われます。"
        "それまでの間、近い内容の質問はこちらです：",
    ),
    "chat.did_you_mean": (
        "Two answers are close. Did you mean one of these?",
        "近い回答が 2 つあります。どちらの質問でしょうか？",
    ),
    "chat.shown_below": ("(shown below)", "（下に表示中）"),
    "chat.sources": ("Sources", "出典"),
    "chat.related": ("Related questions", "関連する質問"),
    "chat.related_declined": ("Closest questions", "近い質問"),
    "chat.conf_high": ("Strong match", "質問によく一致しています"),
    "chat.conf_mid": ("Good match", "質問におおむね一致しています"),
    "chat.conf_low": (
        "Possible match: check that it answers your question",
        "一致度は低めです。質問への答えになっているか確かめてください",
    ),
    "chat.conf_value": ("confidence {percent}%", "確信度 {percent}%"),
    "chat.open_permalink": ("Open this answer's page", "この回答のページを開く"),
    "chat.helpful_q": ("Was this helpful?", "役に立ちましたか？"),
    "chat.helpful_yes": ("Yes", "はい"),
    "chat.helpful_no": ("No", "いいえ"),
    "chat.thanks_yes": ("Thanks! Glad it helped.", "ありがとうございます！"),
    "chat.thanks_no": (
        "Thanks. The TAs will see that this answer did not help.",
        "ありがとうございます。役に立たなかったことを TA に伝えます。",
    ),
    # -- experiments ----------------------------------------------------------
    "run.heading": ("Experiment", "実験"),
    "run.start": ("Run the experiment", "実験を実行する"),
    "run.change_params": ("Change the parameters", "パラメータを変える"),
    "run.loading_params": ("Loading the parameters…", "パラメータを読み込んでいます…"),
    "run.start_params": ("Run with these parameters", "このパラメータで実行する"),
    "run.reset_params": ("Reset to the defaults", "初期値に戻す"),
    "run.starting": ("Starting…", "開始しています…"),
    "run.queued": ("Queued, waiting for a worker… {seconds} s", "順番待ち… {seconds} 秒"),
    "run.running": (
        "Running… {seconds} s of about {budget} s",
        "実行中… {seconds} 秒（目安 {budget} 秒）",
    ),
    "run.finished": ("Finished in {seconds} s.", "{seconds} 秒で完了しました。"),
    "run.cached": (
        "Shown from an earlier identical run.",
        "同じ条件の以前の実行結果を表示しています。",
    ),
    "run.failed": ("The run failed: {message}", "実行に失敗しました：{message}"),
    "run.timed_out": (
        "The run took too long and was stopped.",
        "実行に時間がかかりすぎたため停止しました。",
    ),
    "run.queue_full": (
        "Many runs are waiting. Please try again in a few seconds.",
        "実行待ちが混み合っています。少し待ってからもう一度お試しください。",
    ),
    "run.fix_params": (
        "Please fix the highlighted parameters.",
        "赤で示したパラメータを直してください。",
    ),
    "run.supports": (
        "The result supports the answer's claim.",
        "結果は回答の主張を裏付けています。",
    ),
    "run.not_supports": (
        "This result does not support the claim (try the default parameters).",
        "この結果は主張を裏付けていません（初期値のパラメータもお試しください）。",
    ),
    "run.metrics": ("Metrics", "指標"),
    "run.metric": ("Metric", "指標"),
    "run.value": ("Value", "値"),
    "run.provenance": ("Provenance", "実行の記録"),
    "run.figure_alt": ("Figure {n} of the experiment", "実験の図 {n}"),
    "run.prov_experiment": ("Experiment", "実験"),
    "run.prov_params": ("Parameters", "パラメータ"),
    "run.prov_seed": ("Random seed", "乱数シード"),
    "run.prov_code": ("Code version", "コードのバージョン"),
    "run.prov_torch": ("PyTorch", "PyTorch"),
    "run.prov_isolation": ("Sandbox", "サンドボックス"),
    "run.prov_duration": ("Wall time", "実行時間"),
    "run.prov_cpu": ("CPU time", "CPU 時間"),
    "run.prov_memory": ("Peak memory", "最大メモリ"),
    "run.prov_finished": ("Finished at", "完了時刻"),
    "run.prov_run": ("Run id", "実行 ID"),
    # -- parameter forms ------------------------------------------------------
    "params.between": ("{min} to {max}", "{min} ～ {max}"),
    "params.list_hint": (
        "{minItems} to {maxItems} whole numbers, each {min} to {max}, separated by commas",
        "{min} ～ {max} の整数を {minItems} ～ {maxItems} 個、カンマ区切りで",
    ),
    "params.err_required": ("Enter a value.", "値を入力してください。"),
    "params.err_integer": ("Enter a whole number.", "整数を入力してください。"),
    "params.err_number": ("Enter a number.", "数値を入力してください。"),
    "params.err_range": (
        "Enter a value from {min} to {max}.",
        "{min} ～ {max} の値を入力してください。",
    ),
    "params.err_count": (
        "Give {minItems} to {maxItems} values.",
        "値は {minItems} ～ {maxItems} 個にしてください。",
    ),
    "params.err_choice": ("Choose one of the options.", "選択肢から選んでください。"),
    "params.no_experiment": ("No experiment", "実験なし"),
    # -- TA workspace -----------------------------------------------------------
    "ta.nav_entries": ("Entries", "エントリー"),
    "ta.nav_new": ("New entry", "新規エントリー"),
    "ta.nav_queue": ("Unanswered", "未回答"),
    "ta.nav_feedback": ("Feedback", "フィードバック"),
    "ta.nav_tokens": ("API tokens", "APIトークン"),
    "tokens.title": ("API tokens", "APIトークン"),
    "tokens.lead": (
        "Tokens let forum bots and scripts use the API. "
        "A new token is shown once; only its hash is stored.",
        "トークンでフォーラムのボットやスクリプトがAPIを使えます。新しいトークンは一度だけ表示され、保存されるのはハッシュのみです。",
    ),
    "tokens.name": ("Name", "名前"),
    "tokens.scopes": ("Scopes", "スコープ"),
    "tokens.expires_days": ("Expires after (days, optional)", "有効期限（日数、任意）"),
    "tokens.create": ("Create token", "トークンを作成"),
    "tokens.created": (
        "Copy this token now; it will not be shown again:",
        "このトークンを今コピーしてください。二度と表示されません：",
    ),
    "tokens.prefix": ("Prefix", "プレフィックス"),
    "tokens.status": ("Status", "状態"),
    "tokens.expires": ("Expires", "有効期限"),
    "tokens.last_used": ("Last used", "最終使用"),
    "tokens.revoke": ("Revoke", "無効化"),
    "tokens.none": ("No tokens yet.", "トークンはまだありません。"),
    "tokens.bad_days": (
        "Expiry must be a whole number of days.",
        "有効期限は日数（整数）で指定してください。",
    ),
    "ta.queue_badge": ("{count} open questions", "未回答の質問 {count} 件"),
    "ta.logout": ("Log out", "ログアウト"),
    "ta.logged_out": ("You are logged out.", "ログアウトしました。"),
    "ta.login": ("Log in", "ログイン"),
    "ta.login_title": ("TA workspace", "TA ワークスペース"),
    "ta.login_lead": (
        "Log in with the account the course staff created for you.",
        "授業スタッフが作成したアカウントでログインしてください。",
    ),
    "ta.username": ("Username", "ユーザー名"),
    "ta.password": ("Password", "パスワード"),
    "ta.login_failed": ("Wrong username or password.", "ユーザー名またはパスワードが違います。"),
    "ta.login_throttled": (
        "Too many failed attempts. Please wait a few minutes and try again.",
        "失敗が続いたため、数分待ってからもう一度お試しください。",
    ),
    "ta.bad_request": ("The request could not be used", "リクエストを処理できません"),
    "ta.back_to_entries": ("Back to the entries", "エントリー一覧へ戻る"),
    # entries list
    "ta.entries_title": ("Entries", "エントリー"),
    "ta.search": ("Search", "検索"),
    "ta.search_placeholder": (
        "Words in the question, aliases, answer, tags or slug",
        "質問・別表現・回答・タグ・スラッグの語句",
    ),
    "ta.search_results": (
        "{count} entries match “{q}”.",
        "「{q}」に一致するエントリー：{count} 件",
    ),
    "ta.clear_search": ("Show all", "すべて表示"),
    "ta.pages": ("Pages", "ページ"),
    "ta.previous": ("Previous", "前へ"),
    "ta.next": ("Next", "次へ"),
    "ta.page_of": ("Page {page} of {pages}", "{pages} ページ中 {page} ページ目"),
    "ta.col_question": ("Question", "質問"),
    "ta.col_langs": ("Languages", "言語"),
    "ta.col_experiment": ("Experiment", "実験"),
    "ta.col_helpful": ("Helpful", "役に立った率"),
    "ta.col_version": ("Version", "版"),
    "ta.col_actions": ("Actions", "操作"),
    "ta.col_answered": ("Answered", "回答数"),
    "ta.col_helpful_votes": ("Helpful", "役立った"),
    "ta.col_unhelpful_votes": ("Not helpful", "役立たず"),
    "ta.col_asked": ("Question asked", "寄せられた質問"),
    "ta.col_comment": ("Comment", "コメント"),
    "ta.col_when": ("When (UTC)", "日時（UTC）"),
    "ta.edit": ("Edit", "編集"),
    "ta.history": ("History", "履歴"),
    "ta.view": ("Student view", "学生向けページ"),
    "ta.no_entries": ("No entries match.", "一致するエントリーはありません。"),
    "ta.recently_deleted": ("Recently deleted", "最近削除したエントリー"),
    "ta.restore": ("Restore", "元に戻す"),
    "ta.undo": ("Undo", "取り消す"),
    "ta.deleted": ("Deleted “{slug}”.", "「{slug}」を削除しました。"),
    "ta.restored": ("Restored “{slug}”.", "「{slug}」を復元しました。"),
    "ta.delete_stale": (
        "Someone changed this entry a moment ago; nothing was changed. Look at it again first.",
        "直前に別の人がこのエントリーを変更したため、処理を中止しました。内容を確認してください。",
    ),
    # editor
    "ta.new_title": ("New entry", "新規エントリー"),
    "ta.edit_title": ("Edit", "編集"),
    "ta.entry_legend": ("Entry", "エントリー"),
    "ta.slug": ("Slug (permalink)", "スラッグ（固定リンク）"),
    "ta.slug_help": (
        "Lower-case words joined by hyphens; it cannot change later.",
        "小文字の英単語をハイフンでつなぎます。後から変更できません。",
    ),
    "ta.slug_fixed": (
        "The slug is fixed: links and bots rely on it.",
        "リンクやボットが参照するため、スラッグは変更できません。",
    ),
    "ta.slug_taken": (
        "An entry with this slug exists.",
        "このスラッグのエントリーはすでにあります。",
    ),
    # The entry editor's own checks (pydantic's messages for the rest stay English).
    "form.enter_integer": ("Enter a whole number.", "整数を入力してください。"),
    "form.enter_number": ("Enter a number.", "数値を入力してください。"),
    "form.enter_list": (
        "Enter whole numbers separated by commas.",
        "整数をカンマで区切って入力してください。",
    ),
    "form.version_not_number": (
        "The form's version field is not a number.",
        "フォームのバージョン欄が数値になっていません。",
    ),
    "form.pick_experiment": (
        "Choose one of the listed experiments.",
        "一覧にある実験から選んでください。",
    ),
    "form.one_language": (
        "Write the question and the answer in at least one language.",
        "少なくとも一つの言語で、質問と回答の両方を書いてください。",
    ),
    "form.needs_question": (
        "The answer needs its question too.",
        "この回答に対応する質問も書いてください。",
    ),
    "form.needs_answer": (
        "The question needs its answer too.",
        "この質問に対応する回答も書いてください。",
    ),
    "form.duplicate_key": ("Two citations have this key.", "同じキーの引用が二つあります。"),
    "form.unknown_keys": (
        "Cites keys with no citation below: {keys}.",
        "下の引用一覧にないキーを参照しています: {keys}。",
    ),
    "form.enter_year": ("Enter the year, e.g. 2017.", "年を入力してください（例: 2017）。"),
    "form.help_slug": (
        "Use lower-case letters, digits and single hyphens, e.g. why-relu.",
        "半角の小文字・数字と、連続しないハイフンを使ってください（例: why-relu）。",
    ),
    "form.help_course": (
        "Use lower-case letters, digits and single hyphens.",
        "半角の小文字・数字と、連続しないハイフンを使ってください。",
    ),
    "form.help_tags": (
        "Tags are lower-case words joined by hyphens, e.g. batch-norm.",
        "タグは小文字の単語をハイフンでつないで書きます（例: batch-norm）。",
    ),
    "form.help_key": (
        "A key starts with a letter: lower-case letters, digits, '_' or '-'.",
        "キーは英字で始め、小文字・数字・「_」「-」だけで書きます。",
    ),
    "form.help_url": (
        "A link must start with http:// or https://.",
        "リンクは http:// か https:// で始めてください。",
    ),
    "form.help_doi": ("A DOI looks like 10.1234/abcd.", "DOI は 10.1234/abcd のような形です。"),
    "ta.course": ("Course", "授業"),
    "ta.tags": ("Tags (comma-separated)", "タグ（カンマ区切り）"),
    "ta.question": ("Question", "質問"),
    "ta.aliases": ("Other phrasings (aliases)", "別の聞き方（エイリアス）"),
    "ta.aliases_help": (
        "One per line: how students might ask the same thing.",
        "1 行に 1 つ。学生が同じことを聞くときの言い方を書きます。",
    ),
    "ta.answer": ("Answer (Markdown)", "回答（Markdown）"),
    "ta.answer_help": (
        "Cite sources as [@key]; they become numbered links. Raw HTML is shown as text.",
        "出典は [@key] と書くと番号付きリンクになります。HTML はそのまま文字として表示されます。",
    ),
    "ta.preview": ("Preview", "プレビュー"),
    "ta.citations": ("Citations", "出典"),
    "ta.citations_help": (
        "Every citation needs a key, title, authors, year, venue and a URL or DOI.",
        "出典にはキー・題名・著者・年・掲載先と、URL または DOI が必要です。",
    ),
    "ta.cite_key": ("Key", "キー"),
    "ta.cite_title": ("Title", "題名"),
    "ta.cite_authors": ("Authors (separated by ;)", "著者（; 区切り）"),
    "ta.cite_year": ("Year", "年"),
    "ta.cite_venue": ("Venue", "掲載先"),
    "ta.cite_add": ("Add a citation", "出典を追加"),
    "ta.cite_remove": ("Remove", "削除"),
    "ta.experiment": ("Experiment", "実験"),
    "ta.experiment_pick": ("Experiment shown with the answer", "回答と一緒に表示する実験"),
    "ta.params_help": (
        "Defaults students start from. Values equal to the experiment's defaults are not stored.",
        "学生が最初に使う値です。実験の初期値と同じ値は保存されません。",
    ),
    "ta.save": ("Save", "保存"),
    "ta.cancel": ("Cancel", "キャンセル"),
    "ta.delete": ("Delete this entry", "このエントリーを削除"),
    "ta.delete_help": ("You can undo this.", "後から元に戻せます。"),
    "ta.similar_title": (
        "Similar existing entries (check for duplicates):",
        "似ている既存のエントリー（重複していないか確認してください）：",
    ),
    "ta.duplicate_title": (
        "The service already answers this question with:",
        "この質問には、すでに次のエントリーで回答しています：",
    ),
    "ta.duplicate_body": (
        "Add your wording as an alias of that entry instead, or tick the box below the "
        "questions to save a new entry anyway.",
        "そのエントリーに別表現として追加するか、質問欄の下のチェックを入れて新規に保存してください。",
    ),
    "ta.not_duplicate": (
        "This is a different question: save it as a new entry.",
        "別の質問なので、新しいエントリーとして保存する。",
    ),
    "ta.fix_errors": ("Please fix {count} problem(s):", "{count} 件の問題を直してください："),
    "ta.from_queue": (
        "Saving answers {count} question(s) from the unanswered queue.",
        "保存すると、未回答キューの質問 {count} 件が回答済みになります。",
    ),
    "ta.version_missing": (
        "The form lost the entry's version; reload the page.",
        "フォームから版の情報が失われました。ページを再読み込みしてください。",
    ),
    "ta.created": (
        "Created “{slug}”. Students can ask for it now.",
        "「{slug}」を作成しました。学生はすぐに質問できます。",
    ),
    "ta.created_again": (
        "Created “{slug}” again with this content; the deleted entry's history is kept. "
        "Students can ask for it now.",
        "「{slug}」をこの内容で作成し直しました。削除されたエントリーの履歴は残っています。"
        "学生はすぐに質問できます。",
    ),
    "ta.saved": (
        "Saved “{slug}” (version {version}).",
        "「{slug}」を保存しました（第 {version} 版）。",
    ),
    "ta.unchanged": (
        "Nothing changed, so nothing was saved.",
        "変更がないため保存しませんでした。",
    ),
    "ta.stale_title": (
        "Someone else changed this entry while you were editing it.",
        "編集中に別の人がこのエントリーを変更しました。",
    ),
    "ta.stale_body": (
        "The saved entry is now version {version} ({author}, {at} UTC). Your draft is below, "
        "unchanged. Differences between the saved version and your draft:",
        "保存済みのエントリーは第 {version} 版です（{author}、{at} UTC）。"
        "あなたの下書きは下にそのまま残っています。保存済みの版と下書きの違い：",
    ),
    "ta.stale_next": (
        "Save again to replace the saved version with your draft, or reload to start from it.",
        "もう一度保存すると下書きで置き換えます。保存済みの版から始めるには再読み込みしてください。",
    ),
    "ta.diff_label": ("Differences", "差分"),
    "ta.diff_current": ("saved version {version}", "保存済み 第 {version} 版"),
    "ta.diff_draft": ("your draft", "あなたの下書き"),
    "ta.deleted_meanwhile": (
        "This entry was deleted while you were editing it.",
        "編集中にこのエントリーは削除されました。",
    ),
    # history
    "ta.history_title": ("History of", "変更履歴："),
    "ta.history_deleted": (
        "This entry is deleted. Restore it to bring it back.",
        "このエントリーは削除されています。復元すると元に戻ります。",
    ),
    "ta.action_import": ("imported", "インポート"),
    "ta.action_create": ("created", "作成"),
    "ta.action_update": ("edited", "編集"),
    "ta.action_delete": ("deleted", "削除"),
    "ta.action_restore": ("restored", "復元"),
    "ta.no_changes": ("No differences.", "差分はありません。"),
    "ta.restore_revision": ("Bring back revision #{number}", "第 {number} 版の内容に戻す"),
    "ta.revision_invalid": (
        "Revision #{number} does not meet today's rules for entries, so it cannot come back.",
        "第 {number} 版は現在のエントリーの規則を満たさないため、戻せません。",
    ),
    "ta.revision_restored": (
        "Revision #{number} is the current content again.",
        "第 {number} 版の内容に戻しました。",
    ),
    # queue
    "ta.queue_title": ("Unanswered questions", "未回答の質問"),
    "ta.queue_summary": (
        "{questions} question(s) in {groups} group(s)",
        "{groups} グループ・{questions} 件",
    ),
    "ta.queue_lead": (
        "Questions the service declined, grouped by meaning (Japanese and English together), "
        "newest first.",
        "サービスが回答を控えた質問を、意味の近さでまとめています（日本語と英語も一緒に）。新しい順です。",
    ),
    "ta.queue_count": ("asked {count}×", "{count} 回"),
    "ta.queue_newest": ("Last asked {at} UTC", "最終 {at} UTC"),
    "ta.queue_nearest": ("nearest entry:", "最も近いエントリー："),
    "ta.answer_this": ("Answer this", "回答を書く"),
    "ta.queue_link_label": ("Entry that answers these questions", "これらの質問に答えるエントリー"),
    "ta.queue_add_aliases": ("add as aliases", "別表現として追加"),
    "ta.queue_link": ("Mark as answered", "回答済みにする"),
    "ta.queue_link_summary": (
        "Already answered by an existing entry…",
        "既存のエントリーで回答済みの場合…",
    ),
    "ta.queue_dismiss": ("Dismiss (off-topic)", "対象外として除外"),
    "ta.queue_dismissed": ("Dismissed {count} question(s).", "{count} 件を除外しました。"),
    "ta.queue_undo_hint": ("Dismissed by mistake?", "誤って除外しましたか？"),
    "ta.queue_reopened": ("The questions are back in the queue.", "質問をキューに戻しました。"),
    "ta.queue_linked": (
        "{count} question(s) marked as answered by “{slug}”.",
        "{count} 件を「{slug}」で回答済みにしました。",
    ),
    "ta.queue_answered": (
        "{count} question(s) left the unanswered queue.",
        "未回答キューから {count} 件の質問が外れました。",
    ),
    "ta.queue_bad_action": ("Choose an action for a group.", "グループへの操作を選んでください。"),
    "ta.queue_pick_entry": ("Choose an existing entry.", "既存のエントリーを選んでください。"),
    "ta.queue_empty": (
        "No unanswered questions. Nice work!",
        "未回答の質問はありません。お疲れさまです！",
    ),
    "ta.queue_more": (
        "{count} older group(s) not shown.",
        "古いグループ {count} 件は省略しています。",
    ),
    # feedback
    "ta.feedback_title": ("Feedback", "フィードバック"),
    "ta.feedback_lead": (
        "How students rated each entry's answers; the least helpful first.",
        "学生による各エントリーの評価です。役に立った率の低い順に並べています。",
    ),
    "ta.feedback_summary": (
        "Answered {answered} question(s); {helpful} of {rated} ratings helpful ({percent}%).",
        "{answered} 件の質問に回答。評価 {rated} 件中 {helpful} 件が「役に立った」（{percent}%）。",
    ),
    "ta.no_votes": ("No ratings yet", "まだ評価はありません"),
    "ta.unhelpful_title": (
        "Recent “not helpful” questions",
        "最近「役に立たなかった」と評価された質問",
    ),
    "ta.no_unhelpful": ("None so far.", "まだありません。"),
    "ta.all_feedback": ("All feedback", "フィードバック一覧"),
    # editor scripts
    "ta_js.unknown_keys": (
        "Cited but not in the citations: {keys}",
        "出典一覧にないキーを引用しています：{keys}",
    ),
    "ta_js.likely_duplicate": ("likely the same question", "同じ質問の可能性大"),
    # -- entry page ---------------------------------------------------------
    "entry.ask_another": ("Ask a question", "質問する"),
    "entry.permalink": ("Link to share:", "共有用リンク："),
    # -- errors ---------------------------------------------------------------
    "error.not_found_title": ("Not found", "見つかりません"),
    "error.not_found": (
        "There is no such page. The entry may have been renamed or removed.",
        "このページは存在しません。エントリーが変更または削除された可能性があります。",
    ),
    "error.back_home": ("Back to the questions", "質問ページへ戻る"),
    "error.csrf_title": ("The form expired", "フォームの有効期限が切れました"),
    "error.csrf": (
        "For your security the form could not be accepted. Reload the page and try again.",
        "安全のため、このフォームは受け付けられませんでした。ページを再読み込みしてもう一度お試しください。",
    ),
}


def ui_lang() -> str:
    """The interface language of this request."""
    if "ui_lang" not in g:
        chosen = request.cookies.get(COOKIE)
        if chosen not in LANGS:
            chosen = request.accept_languages.best_match(LANGS, default="en")
        g.ui_lang = chosen
    return g.ui_lang


def other_lang() -> str:
    return "ja" if ui_lang() == "en" else "en"


def translate(key: str, lang: str | None = None, **values: object) -> str:
    """The string ``key`` in ``lang`` (default: the interface language), with ``{values}``."""
    pair = STRINGS.get(key)
    if pair is None:
        return key
    text = pair[1] if (lang or ui_lang()) == "ja" else pair[0]
    return text.format(**values) if values else text


def js_strings(*sections: str) -> dict[str, str]:
    """The interface strings of ``sections`` for scripts, in the interface language."""
    prefixes = tuple(f"{s}." for s in sections)
    return {key: translate(key) for key in STRINGS if key.startswith(prefixes)}


def remember_lang(response: BaseResponse, lang: str) -> None:
    response.set_cookie(COOKIE, lang, max_age=COOKIE_MAX_AGE, samesite="Lax", httponly=True)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["_"] = translate

    @app.context_processor
    def _lang_context() -> dict[str, object]:
        return {"ui_lang": ui_lang(), "other_lang": other_lang(), "lang_switch_next": None}
