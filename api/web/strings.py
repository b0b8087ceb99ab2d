"""Every word of the profile page, in the five locales the catalogs require."""

from __future__ import annotations

LOCALES = ("en", "zh", "ja", "ko", "es")
LANGUAGE_NAMES = {"en": "English", "zh": "中文", "ja": "日本語", "ko": "한국어", "es": "Español"}

# key -> (en, zh, ja, ko, es)
_ROWS: dict[str, tuple[str, str, str, str, str]] = {
    "title": (
        "What attune knows about you",
        "attune 对你的了解",
        "attune があなたについて知っていること",
        "attune이 알고 있는 나에 대한 정보",
        "Lo que attune sabe de ti",
    ),
    "intro": (
        "attune chooses how the assistant answers you: depth, tone, format and length. "
        "Here you can see what it has learned and change it.",
        "attune 决定助手如何回答你：深度、语气、格式和篇幅。你可以在这里查看并修改它学到的内容。",
        "attune はアシスタントの答え方（深さ・口調・形式・長さ）を選びます。"
        "ここで学習した内容を確認し、変更できます。",
        "attune은 어시스턴트가 답하는 방식(깊이, 어조, 형식, 길이)을 정합니다. "
        "여기에서 학습한 내용을 보고 바꿀 수 있습니다.",
        "attune elige cómo te responde el asistente: profundidad, tono, formato y extensión. "
        "Aquí puedes ver lo que ha aprendido y cambiarlo.",
    ),
    "skip": (
        "Skip to content",
        "跳到正文",
        "本文へ移動",
        "본문으로 건너뛰기",
        "Saltar al contenido",
    ),
    "language": ("Language", "语言", "言語", "언어", "Idioma"),
    "link_expires": (
        "This link works until {time}.",
        "此链接在 {time} 前有效。",
        "このリンクは {time} まで有効です。",
        "이 링크는 {time}까지 유효합니다.",
        "Este enlace funciona hasta {time}.",
    ),
    "saved": ("Saved.", "已保存。", "保存しました。", "저장했습니다.", "Guardado."),
    "personalization": ("Personalization", "个性化", "パーソナライズ", "개인화", "Personalización"),
    "active": (
        "attune adapts its answers to you.",
        "attune 会根据你调整回答方式。",
        "attune はあなたに合わせて答え方を調整しています。",
        "attune이 나에게 맞춰 답변 방식을 조정합니다.",
        "attune adapta sus respuestas a ti.",
    ),
    "paused": (
        "Paused: attune answers you as it would anyone, and learns nothing from you until "
        "you resume. Your pins and notes are kept.",
        "已暂停：attune 会像对待任何人一样回答你，在你恢复之前不会从你这里学习。"
        "你的固定设置和备注会保留。",
        "一時停止中：attune は誰に対しても同じように答え、再開するまであなたから何も学びません。"
        "固定設定とメモは残ります。",
        "일시 중지됨: attune은 누구에게나 하듯이 답하며, 다시 시작할 때까지 나에게서 아무것도 "
        "배우지 않습니다. 고정 설정과 메모는 유지됩니다.",
        "En pausa: attune te responde como a cualquiera y no aprende nada de ti hasta que "
        "la reanudes. Tus fijaciones y notas se conservan.",
    ),
    "pause": (
        "Pause personalization",
        "暂停个性化",
        "パーソナライズを一時停止",
        "개인화 일시 중지",
        "Pausar la personalización",
    ),
    "resume": (
        "Resume personalization",
        "恢复个性化",
        "パーソナライズを再開",
        "개인화 다시 시작",
        "Reanudar la personalización",
    ),
    "preferences": (
        "Learned preferences",
        "学到的偏好",
        "学習した好み",
        "학습한 선호",
        "Preferencias aprendidas",
    ),
    "preferences_help": (
        "For each dimension: the style attune currently leans to, how sure it is, and a pin "
        "that fixes it.",
        "每个维度：attune 目前倾向的风格、把握程度，以及可将其固定的设置。",
        "各項目について、attune が今向いているスタイル、その確かさ、そして固定する設定です。",
        "각 항목마다 attune이 현재 선호하는 방식, 확신 정도, 그리고 고정 설정입니다.",
        "Para cada dimensión: el estilo al que attune se inclina ahora, su seguridad y una "
        "fijación que lo deja fijo.",
    ),
    "dimension": ("Dimension", "维度", "項目", "항목", "Dimensión"),
    "leaning": ("Leans to", "倾向", "傾向", "선호", "Se inclina por"),
    "confidence": ("Confidence", "把握程度", "確かさ", "확신도", "Seguridad"),
    "pin": ("Pin", "固定", "固定", "고정", "Fijar"),
    "pin_label": (
        "Pin {dimension}",
        "固定{dimension}",
        "{dimension}を固定",
        "{dimension} 고정",
        "Fijar {dimension}",
    ),
    "not_pinned": ("Not pinned", "不固定", "固定しない", "고정 안 함", "Sin fijar"),
    "pinned_now": ("pinned", "已固定", "固定中", "고정됨", "fijado"),
    "save": ("Save", "保存", "保存", "저장", "Guardar"),
    "notes": (
        "Notes attune remembers",
        "attune 记住的备注",
        "attune が覚えているメモ",
        "attune이 기억하는 메모",
        "Notas que attune recuerda",
    ),
    "notes_help": (
        "Notes relevant to a question are given to the assistant with it. Pinned notes are "
        "always given.",
        "与问题相关的备注会随问题一起提供给助手。置顶的备注总是会提供。",
        "質問に関係するメモは質問と一緒にアシスタントへ渡されます。固定したメモは常に渡されます。",
        "질문과 관련된 메모는 질문과 함께 어시스턴트에게 전달됩니다. "
        "고정된 메모는 항상 전달됩니다.",
        "Las notas relevantes para una pregunta se dan al asistente con ella. Las notas fijadas "
        "se dan siempre.",
    ),
    "no_notes": (
        "No notes yet.",
        "还没有备注。",
        "メモはまだありません。",
        "아직 메모가 없습니다.",
        "Todavía no hay notas.",
    ),
    "note_text": ("Note", "备注", "メモ", "메모", "Nota"),
    "note_key": (
        "Topic (optional, e.g. background)",
        "主题（可选，如 background）",
        "トピック（任意、例：background）",
        "주제(선택, 예: background)",
        "Tema (opcional, p. ej. background)",
    ),
    "note_pinned": (
        "Always use this note",
        "总是使用此备注",
        "このメモを常に使う",
        "이 메모를 항상 사용",
        "Usar siempre esta nota",
    ),
    "add_note": ("Add note", "添加备注", "メモを追加", "메모 추가", "Añadir nota"),
    "edit_note": ("Edit note", "编辑备注", "メモを編集", "메모 수정", "Editar nota"),
    "delete_note": ("Delete note", "删除备注", "メモを削除", "메모 삭제", "Borrar nota"),
    "source": ("Source", "来源", "出典", "출처", "Origen"),
    "source_user": ("you", "你", "あなた", "나", "tú"),
    "source_product": ("the app", "应用", "アプリ", "앱", "la aplicación"),
    "source_inferred": (
        "inferred by the app",
        "应用推断",
        "アプリの推測",
        "앱이 추론",
        "deducida por la aplicación",
    ),
    "expires": (
        "expires {time}",
        "{time} 过期",
        "{time} に期限切れ",
        "{time} 만료",
        "caduca {time}",
    ),
    "history": ("History", "历史", "履歴", "기록", "Historial"),
    "earlier_version": (
        "Version {version}, until {time}",
        "第 {version} 版，至 {time}",
        "バージョン {version}（{time} まで）",
        "버전 {version}, {time}까지",
        "Versión {version}, hasta {time}",
    ),
    "superseded": (
        "Replaced on {time} by a newer note on the same topic",
        "已于 {time} 被同一主题的新备注取代",
        "{time} に同じトピックの新しいメモに置き換えられました",
        "{time}에 같은 주제의 새 메모로 대체됨",
        "Sustituida el {time} por una nota más reciente del mismo tema",
    ),
    "replaced_notes": (
        "Replaced notes",
        "已被取代的备注",
        "置き換えられたメモ",
        "대체된 메모",
        "Notas sustituidas",
    ),
    "decisions": (
        "Recent answers and why",
        "最近的回答及原因",
        "最近の回答とその理由",
        "최근 답변과 이유",
        "Respuestas recientes y por qué",
    ),
    "no_decisions": (
        "No answers yet.",
        "还没有回答。",
        "まだ回答はありません。",
        "아직 답변이 없습니다.",
        "Todavía no hay respuestas.",
    ),
    "strategy": ("Style", "风格", "スタイル", "방식", "Estilo"),
    "why": ("Why", "原因", "理由", "이유", "Por qué"),
    "your_data": ("Your data", "你的数据", "あなたのデータ", "내 데이터", "Tus datos"),
    "export": (
        "Download everything (JSON)",
        "下载全部数据（JSON）",
        "すべてダウンロード（JSON）",
        "모두 다운로드(JSON)",
        "Descargar todo (JSON)",
    ),
    "delete_all": ("Delete everything", "删除全部", "すべて削除", "모두 삭제", "Borrar todo"),
    "confirm_title": (
        "Delete everything attune knows about you?",
        "删除 attune 对你的全部了解？",
        "attune があなたについて知っていることをすべて削除しますか？",
        "attune이 알고 있는 나에 대한 정보를 모두 삭제할까요?",
        "¿Borrar todo lo que attune sabe de ti?",
    ),
    "confirm_text": (
        "Your learned preferences, pins, notes and history will be erased. This cannot be undone.",
        "你学到的偏好、固定设置、备注和历史都将被清除，且无法恢复。",
        "学習した好み、固定設定、メモ、履歴がすべて消去されます。元に戻すことはできません。",
        "학습한 선호, 고정 설정, 메모와 기록이 모두 지워지며 되돌릴 수 없습니다.",
        "Se borrarán tus preferencias aprendidas, fijaciones, notas e historial. No se puede "
        "deshacer.",
    ),
    "confirm_yes": (
        "Yes, delete everything",
        "是的，全部删除",
        "はい、すべて削除します",
        "네, 모두 삭제합니다",
        "Sí, borrar todo",
    ),
    "cancel": ("Cancel", "取消", "キャンセル", "취소", "Cancelar"),
    "deleted_title": (
        "Everything was deleted",
        "已全部删除",
        "すべて削除しました",
        "모두 삭제했습니다",
        "Se borró todo",
    ),
    "nothing_stored": (
        "attune stores nothing about you.",
        "attune 没有存储任何关于你的信息。",
        "attune はあなたについて何も保存していません。",
        "attune은 나에 대한 정보를 저장하고 있지 않습니다.",
        "attune no guarda nada sobre ti.",
    ),
    "error_title": (
        "This link does not work",
        "此链接无效",
        "このリンクは使えません",
        "이 링크는 사용할 수 없습니다",
        "Este enlace no funciona",
    ),
    "error_expired": (
        "The link has expired. Ask the app for a new one to see your profile.",
        "链接已过期。请在应用中重新获取链接来查看你的资料。",
        "リンクの期限が切れています。プロフィールを見るにはアプリで新しいリンクを取得してください。",
        "링크가 만료되었습니다. 프로필을 보려면 앱에서 새 링크를 받으세요.",
        "El enlace ha caducado. Pide uno nuevo en la aplicación para ver tu perfil.",
    ),
    "error_invalid": (
        "The link is not valid. Open it again from the app, exactly as it was given.",
        "链接无效。请从应用中按原样重新打开。",
        "リンクが正しくありません。アプリから、そのままの形でもう一度開いてください。",
        "링크가 올바르지 않습니다. 앱에서 받은 그대로 다시 여세요.",
        "El enlace no es válido. Vuelve a abrirlo desde la aplicación, tal como se te dio.",
    ),
    "error_input": (
        "That change could not be saved: {detail}",
        "无法保存此更改：{detail}",
        "変更を保存できませんでした：{detail}",
        "변경 내용을 저장할 수 없습니다: {detail}",
        "No se pudo guardar el cambio: {detail}",
    ),
    "back": (
        "Back to your profile",
        "返回你的资料",
        "プロフィールに戻る",
        "프로필로 돌아가기",
        "Volver a tu perfil",
    ),
}

STRINGS: dict[str, dict[str, str]] = {
    loc: {key: row[i] for key, row in _ROWS.items()} for i, loc in enumerate(LOCALES)
}


def page_locale(tag: str | None) -> str:
    """The page locale for a BCP-47 tag (its primary subtag if the page has it, else en)."""
    primary = (tag or "en").replace("_", "-").split("-")[0].lower()
    return primary if primary in STRINGS else "en"
