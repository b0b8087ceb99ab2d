"""The words of every explanation, in every locale the catalogs require: one table.

``TEMPLATES[kind][locale]`` is a ``str.format`` template; the fields it may use are
``dimension`` and ``level`` (the catalog's labels in that locale), ``phrase`` (a request
feature in words, from ``PHRASES``), ``feature`` (a declared feature and its value, as the
product named them), ``note`` (a note's text) and ``group`` (the user's group). A new locale
or kind is a row here; ``tests/bandit/test_explain_locales.py`` renders every cell.
"""

from __future__ import annotations

LOCALES = ("en", "zh", "ja", "ko", "es")

TEMPLATES: dict[str, dict[str, str]] = {
    # Learned from this user's own feedback.
    "preference": {
        "en": "you have responded well to {dimension} '{level}'",
        "zh": "你对{dimension}为“{level}”的回答反馈较好",
        "ja": "{dimension}が「{level}」の回答にあなたは良い反応を示しています",
        "ko": "{dimension}이(가) '{level}'인 답변에 좋은 반응을 보였습니다",
        "es": "has respondido bien a {dimension} «{level}»",
    },
    # A feature of this message, learned from all users of the product.
    "request": {
        "en": "{phrase}, which favours {dimension} '{level}'",
        "zh": "{phrase}，这更适合{dimension}为“{level}”",
        "ja": "{phrase}ため、{dimension}は「{level}」が向いています",
        "ko": "{phrase} {dimension}은(는) '{level}'이(가) 적합합니다",
        "es": "{phrase}, lo que favorece {dimension} «{level}»",
    },
    # A declared request feature the product sent with this turn.
    "request_declared": {
        "en": "this request has {feature}, which favours {dimension} '{level}'",
        "zh": "此请求带有 {feature}，这更适合{dimension}为“{level}”",
        "ja": "このリクエストは {feature} なので、{dimension}は「{level}」が向いています",
        "ko": "이 요청에 {feature}이(가) 있어 {dimension}은(는) '{level}'이(가) 적합합니다",
        "es": "esta solicitud tiene {feature}, lo que favorece {dimension} «{level}»",
    },
    # A declared user feature (role, plan, stated expertise) the product knows.
    "user_feature": {
        "en": "your profile says {feature}, which favours {dimension} '{level}'",
        "zh": "你的资料显示 {feature}，这更适合{dimension}为“{level}”",
        "ja": "プロフィールが {feature} なので、{dimension}は「{level}」が向いています",
        "ko": "프로필에 {feature}(으)로 되어 있어 {dimension}은(는) '{level}'이(가) 적합합니다",
        "es": "tu perfil dice {feature}, lo que favorece {dimension} «{level}»",
    },
    # The user's starting point from collaborative filtering: what users like them preferred.
    "group": {
        "en": "people in your group ({group}) respond well to {dimension} '{level}'",
        "zh": "与你同组（{group}）的用户对{dimension}为“{level}”的回答反馈较好",
        "ja": "同じグループ（{group}）の人は{dimension}が「{level}」の回答に良い反応を示しています",
        "ko": "같은 그룹({group}) 사용자들은 {dimension}이(가) '{level}'인 답변을 좋아합니다",
        "es": "las personas de tu grupo ({group}) responden bien a {dimension} «{level}»",
    },
    "group_unnamed": {
        "en": "people with tastes like yours respond well to {dimension} '{level}'",
        "zh": "与你喜好相近的用户对{dimension}为“{level}”的回答反馈较好",
        "ja": "あなたと好みの近い人は{dimension}が「{level}」の回答に良い反応を示しています",
        "ko": "취향이 비슷한 사용자들은 {dimension}이(가) '{level}'인 답변에 좋은 반응을 보입니다",
        "es": "las personas con gustos como los tuyos responden bien a {dimension} «{level}»",
    },
    "pin": {
        "en": "you pinned {dimension} to '{level}'",
        "zh": "你已将{dimension}固定为“{level}”",
        "ja": "あなたが{dimension}を「{level}」に固定しました",
        "ko": "{dimension}을(를) '{level}'(으)로 고정했습니다",
        "es": "fijaste {dimension} en «{level}»",
    },
    "note": {
        "en": "attune used your note: “{note}”",
        "zh": "attune 参考了你的备注：“{note}”",
        "ja": "attune はあなたのメモを使いました：「{note}」",
        "ko": "attune이 메모를 참고했습니다: “{note}”",
        "es": "attune usó tu nota: «{note}»",
    },
    "note_pinned": {
        "en": "attune always uses your pinned note: “{note}”",
        "zh": "attune 始终参考你置顶的备注：“{note}”",
        "ja": "attune は固定されたメモを常に使います：「{note}」",
        "ko": "attune은 고정된 메모를 항상 참고합니다: “{note}”",
        "es": "attune siempre usa tu nota fijada: «{note}»",
    },
    "note_deleted": {
        "en": "attune used a note you have since deleted",
        "zh": "attune 参考了一条你之后删除的备注",
        "ja": "attune はその後あなたが削除したメモを使いました",
        "ko": "attune이 이후 삭제된 메모를 참고했습니다",
        "es": "attune usó una nota que después borraste",
    },
    "paused": {
        "en": "personalization is paused: attune answered as it would anyone",
        "zh": "个性化已暂停：attune 按对所有人的方式回答",
        "ja": "パーソナライズは一時停止中です：attune は誰に対しても同じように答えました",
        "ko": "개인화가 일시 중지되어 attune이 누구에게나 하듯이 답했습니다",
        "es": "la personalización está en pausa: attune respondió como a cualquiera",
    },
    "exploration": {
        "en": "attune is still trying strategies to learn what works for you",
        "zh": "attune 仍在尝试不同的策略，以了解什么最适合你",
        "ja": "attune はあなたに合う方法を知るため、まだいろいろな方法を試しています",
        "ko": "attune은 무엇이 잘 맞는지 알아보기 위해 아직 여러 방식을 시도하고 있습니다",
        "es": "attune todavía está probando estrategias para saber qué te funciona",
    },
    "exploration_more": {
        "en": "attune sometimes tries a different strategy to keep learning",
        "zh": "attune 有时会尝试不同的策略，以便持续学习",
        "ja": "attune は学び続けるため、ときどき別の方法を試します",
        "ko": "attune은 계속 배우기 위해 가끔 다른 방식을 시도합니다",
        "es": "attune a veces prueba otra estrategia para seguir aprendiendo",
    },
}

# The message features an explanation can name (``bandit.features.FEATURE_NAMES``).
PHRASES: dict[str, dict[str, str]] = {
    "technicality": {
        "en": "your message is technical",
        "zh": "你的消息偏技术性",
        "ja": "メッセージが技術的な",
        "ko": "메시지가 기술적이어서",
        "es": "tu mensaje es técnico",
    },
    "has_code": {
        "en": "your message contains code",
        "zh": "你的消息包含代码",
        "ja": "メッセージにコードが含まれている",
        "ko": "메시지에 코드가 있어서",
        "es": "tu mensaje contiene código",
    },
    "asks_how": {
        "en": "you asked how to do something",
        "zh": "你问的是如何做某事",
        "ja": "やり方を尋ねた",
        "ko": "방법을 물어서",
        "es": "preguntaste cómo hacer algo",
    },
    "asks_why": {
        "en": "you asked why something is so",
        "zh": "你问的是为什么",
        "ja": "理由を尋ねた",
        "ko": "이유를 물어서",
        "es": "preguntaste por qué algo es así",
    },
    "asks_what": {
        "en": "you asked what something is",
        "zh": "你问的是某事物是什么",
        "ja": "何であるかを尋ねた",
        "ko": "무엇인지 물어서",
        "es": "preguntaste qué es algo",
    },
    "asks_task": {
        "en": "you asked for something to be done",
        "zh": "你请求完成某项任务",
        "ja": "作業を依頼した",
        "ko": "작업을 요청해서",
        "es": "pediste que se hiciera algo",
    },
    "length": {
        "en": "your message is long",
        "zh": "你的消息较长",
        "ja": "メッセージが長い",
        "ko": "메시지가 길어서",
        "es": "tu mensaje es largo",
    },
    "script_latin": {
        "en": "you wrote in a Latin script",
        "zh": "你用拉丁字母书写",
        "ja": "ラテン文字で書いた",
        "ko": "라틴 문자로 써서",
        "es": "escribiste en alfabeto latino",
    },
    "script_han": {
        "en": "you wrote in Chinese characters",
        "zh": "你用汉字书写",
        "ja": "漢字で書いた",
        "ko": "한자로 써서",
        "es": "escribiste con caracteres chinos",
    },
    "script_kana": {
        "en": "you wrote in Japanese",
        "zh": "你用日语书写",
        "ja": "日本語で書いた",
        "ko": "일본어로 써서",
        "es": "escribiste en japonés",
    },
    "script_hangul": {
        "en": "you wrote in Korean",
        "zh": "你用韩语书写",
        "ja": "韓国語で書いた",
        "ko": "한국어로 써서",
        "es": "escribiste en coreano",
    },
}


def template(kind: str, locale: str) -> str:
    """The template of ``kind`` in ``locale`` (English for a locale the table lacks)."""
    row = TEMPLATES[kind]
    return row.get(locale) or row["en"]


def phrase(name: str, locale: str) -> str:
    row = PHRASES[name]
    return row.get(locale) or row["en"]
