"""English function words and cues the built-in planner reads: negation, stance, critiques, greetings,
references to the shown list. Grammar of the language, not of any catalogue: facet words (genres, brands...)
are data of each dataset's vocabulary (components/vocabularies)."""

from __future__ import annotations

import re


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NEGATION_CUES = words(
    "no not nothing without never avoid except excluding exclude hate dislike don't dont doesn't "
    "doesnt isn't "
    "isnt aren't arent won't wont none neither nor skip nope minus w/o didn't didnt anything_but other_than "
    "nothing_like unlike"
)
NEGATION_BIGRAMS = frozenset(
    {("anything", "but"), ("other", "than"), ("rather", "than")}
    # "I'm tired of Marvel", "sick of remakes", "bored with rom-coms": what follows is not wanted
    | {("tired", "of"), ("sick", "of"), ("bored", "of"), ("bored", "with"), ("enough", "of")}
    # "I can't stand Adam Sandler"
    | {("can't", "stand"), ("cant", "stand"), ("cannot", "stand")}
)
# a wish about the people behind an item without naming them ("what else did that director make?", "more
# with the same actor"): answerable only where a facet holds people
PEOPLE_WISH = re.compile(
    r"\b(?:what|anything|something|any)(?: else)? (?:did|has|have) (?:that|the|this|same|he|she|they)?\s*"
    r"(?:director|actor|actress|guy|filmmaker|star)?\s*(?:make|made|direct|directed|do|done|star in|been in|"
    r"acted in|played in)\b"
    r"|\b(?:(?:other|more) (?:movies|films|ones|stuff) )?(?:by|from|with) (?:that|the same|this) "
    r"(?:director|actor|actress|filmmaker|cast|star)\b"
    r"|\bsame (?:director|actor|actress|cast|filmmaker)\b"
    r"|\b(?:what|anything|something)(?: else)? (?:he|she|they|that (?:director|actor|actress)) "
    r"(?:made|directed|starred in|stars in|was in|is in|did|has done|acted in)\b"
)
# pairs said as one thing ("no black and white films"): avoided together, not each word on its own
BINOMIALS = frozenset({("black", "white"), ("rock", "roll"), ("sword", "sorcery"), ("cat", "mouse")})
# "never heard of it", "haven't heard of that one": a remark about the item, nothing to search or avoid
NOT_HEARD = re.compile(
    r"\b(?:never|not|haven'?t|have not|hadn'?t|didn'?t)\s+(?:even\s+)?(?:heard|hear)\s+(?:of|about)\s+"
    r"(?:it|that|this|them|those|these)(?:\s+one)?\b"
)
# "I'm big on 80s movies", "not too crazy about musicals": a liking, no search or avoided word
FONDNESS = re.compile(r"\b(?:big|crazy|mad|nuts|huge)\s+(?:on|about)\b")
# a negation cue right before one of these negates no wish: it gives leave ("I don't mind comedy", "not
# against horror") or speaks of knowing ("I don't know what I want or maybe a comedy")
NOT_NEGATING_AFTER = words("mind object opposed against averse know remember recall")
# a negation's scope ends at these ("no horror or war" keeps it across "or")
CLAUSE_BOUNDARIES = words(
    ", . ; : ! ? ( ) but and though although however instead yet just only so then plus also with because "
    "since while"
)
NEGATION_WINDOW = 6

LIKE_CUES = words(
    "like likes liked love loves loved enjoy enjoys enjoyed adore adored favorite favourite favorites "
    "favourites fan great awesome amazing brilliant good best fantastic excellent"
)
PREFERENCE_VERBS = words("like love loved loving enjoy enjoyed prefer into fan favorite favourite adore")
SIMILAR_CUES = words("like similar such vein reminiscent style lines a_la more")
DISLIKE_CUES = words(
    "hate hated hates dislike disliked awful terrible boring bad worst meh overrated rubbish stupid lame"
)
# When something happened ("last night", "yesterday"): part of the sentence, never something to search for
WHEN_WORDS = words("yesterday tomorrow last week weeks month months ago recently lately")
SEEN_CUES = words("seen saw watched watch already finished")
ASK_CUES = words("about what's whats who who's how is was does did tell plot story cast starring director")
REQUEST_CUES = words(
    "recommend recommendation recommendations suggest suggestion suggestions looking want wanna need find "
    "show give something anything some any options ideas mood into prefer craving search get buy"
)
THIS_LIST = words("those these them they all ones")  # "I saw those already"
IT_WORDS = words("it that this one")
GREETINGS = words(
    "hi hello hey hiya howdy greetings morning evening afternoon thanks thank thx ty cheers bye goodbye "
    "welcome nice meet pleasure fine good great ok okay cool yes yeah yep no nope sure awesome how are you "
    "doing i'm im am well today"
)
# an answer that agrees to what the assistant just asked ("Do you want something romantic again?" "yes but
# a bit more recent"): the question's wishes become the user's
AFFIRMATIVE = re.compile(
    r"^\s*(?:yes|yeah|yea|yep|yup|sure|definitely|absolutely|of course|ok|okay|sounds good|that'd be great|"
    r"that would be great|i do|i would|(?:a (?:bit|little|mix) of |kind of |i like |i'd like |i love )?both|"
    r"either(?: one| is fine| works)?|any of (?:them|those))\b",
    re.IGNORECASE,
)  # "Do you prefer action or drama?" "a bit of both": the question's values, as for a yes


# ... or declines it ("Do you like ones with romance as well?" "no, not really")
NEGATIVE_ANSWER = re.compile(
    r"^\s*(?:no|nope|nah|not really|not at all|not so much|i don'?t)\b", re.IGNORECASE
)


def last_question(text: str) -> str:
    """The last sentence of ``text`` that ends in a question mark ('' when none)."""
    asked = [q.strip() for q in re.findall(r"[^.!?]*\?", text)]
    return asked[-1] if asked else ""


THANKS = re.compile(r"\b(?:thanks?(?: you)?|thx|ty|cheers|much appreciated)\b", re.IGNORECASE)
BYE = re.compile(
    r"\b(?:bye|goodbye|good night|see you|that's all|that is all|i'm done|later)\b", re.IGNORECASE
)
# "what can you do?", "how does this work?", "help"
HELP = re.compile(
    r"^\W*(?:help|what can you do|what do you do|how does (?:this|it) work|how do i use (?:this|you)|"
    r"what are you|who are you|what should i say|what can i ask)\b",
    re.IGNORECASE,
)
# Kinds of items a catalogue of films (or books) does not hold: "recommend me a Netflix series", "a book
# about space" on films
OTHER_KINDS = re.compile(
    r"\b(?:(?:tv |netflix |web )?(?:series|shows?(?! (?:me|us|them|him|her|some|a few|what|which|all|more|"
    r"other)\b))|books?|novels?|games?|video games?|albums?|songs?|podcasts?|anime series|documentary series|"
    r"audiobooks?)\b"
)  # "show me some thrillers" is a verb, not a TV show


CHIT_CHAT = re.compile(
    r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|evening|afternoon)|thanks?(?: you)?|thx|ty|"
    r"cheers|bye|goodbye|see you|how are you|how's it going|what's up|wassup|nice to meet you|ok(?:ay)?|"
    r"cool|great|awesome|sure|yes|yeah|yep|no|nope|lol|haha|fair enough|of course|sounds good|good|nice|"
    r"right|true|indeed|definitely|absolutely|exactly|agreed|occasionally|maybe|perhaps|wow|oh+|ah+|hmm+|"
    r"perfect|excellent|noted|ha|hah|that'?s (?:great|good|nice|cool|fine)|have a (?:great|good|nice))\b"
)

# a request or a question by its form: what is off-topic asks for something ("tell me a joke", "how do I
# fix my car"); a remark that is neither ("I will check that out", "Fair enough") is conversation
REQUEST_FORM = re.compile(
    r"^\W*(?:please\s+)?(?:tell|give|show|find|get|help|explain|write|book|order|call|translate|calculate|"
    r"play|set|remind|search|look up|check|what|what's|whats|who|who's|how|when|where|why|which|can you|"
    r"could you|would you|will you|do you|is there|are there)\b"
)

# "surprise me", "you pick", "up to you", "anything is fine": the pick is left to us, with no preference
LEFT_TO_US = re.compile(
    r"\bsurprise (?:me|us)\b|\byou (?:pick|choose|decide)\b|\bup to you\b|\banything (?:is )?fine\b"
    r"|\b(?:it )?(?:doesn'?t|does not|don'?t|didn'?t) (?:really )?matter\b"
    r"|\bi don'?t (?:really )?(?:care|mind)(?=\s*(?:[.,!?]|$))|\bno preference\b"
)
# a question that asks for a pick ("what should I watch tonight", "what's good to watch", "which one should
# we get"): a request, though it has no request word; or a pick left to us
PICK_QUESTION = re.compile(
    r"\b(?:what|which)(?:'s|s| is| are)?\s+(?:(?:movie|film|show|one|thing|product|book)s?\s+)?"
    r"(?:should|can|could|shall|would|to|worth|good to|best to)\s+(?:i|we|you)?\s*(?:\w+\s+)?"
    r"(?:watch|see|buy|get|read|try|rent|stream|pick|choose|order)\b"
    # "what filament is best for a beginner?", "which glue is good for wood?", "what's a good sequel?",
    # "what kind of glue is best for plastic?"
    r"|\b(?:what|which)(?:'s| is| are)?\s+(?:\w+\s+){0,3}?(?:is |are |would be )?(?:the |a )?"
    r"(?:best|good|better|recommended|ideal|right|most\s+[a-z]+)\b"
    r"|" + LEFT_TO_US.pattern
)

REMARK = re.compile(
    r"\b(?:i|i'm|im|i'll|i've|i'd|you|you're|we|we're|it|it's|its|that|that's|this|he|she|they|"
    r"there|there's|me|my)\b"
)
# "that" opening a relative clause after a noun ("safety goggles that won't fog"): no remark's "that"
RELATIVE_THAT = re.compile(
    r"(?<=[a-z]) (?:that|which) (?=(?:won't|wont|doesn't|doesnt|don't|dont|can't|cant|will|would|can|could|"
    r"is|are|has|have|fits?|works?|holds?|lasts?|goes|go)\b)"
)


ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8,
    "9th": 9, "10th": 10, "last": -1, "top": 1,
}  # fmt: skip
COUNTS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9, "10": 10, "couple": 2, "few": 3,
}  # fmt: skip
ORDINAL_NOUNS = words("one film movie item pick title suggestion result option product book show")

RESET = re.compile(
    r"\b(?:start(?:ing)? (?:over|again|afresh)|reset|restart|from scratch|new search|"
    r"forget (?:it|everything|that|all that)|clear (?:everything|all)|scratch that)\b"
)
INSTEAD = re.compile(r"\b(?:instead|rather|switch to|change (?:it )?to|make it)\b")
CRITIQUES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:more recent|most recent|newer|newest|recent ones?|latest|more modern|less old|"
                r"(?:not|isn't|isnt|is not|aren't|arent|nothing) (?:so |too |as |that |very )?old|"
                r"new releases?|(?:anything|something) current|"
                r"current (?:movies|films|ones|releases)|new (?:movies|films) to|"
                r"(?:came|come|comes|coming) out (?:recently|lately|this year)|released (?:recently|lately)|"
                r"recent releases?)\b"),
     "newer"),
    (re.compile(r"\b(?:older ones?|older|oldest|classics?|vintage|less recent|old[- ]school|retro|"
                r"(?:not|isn't|isnt|is not|aren't|arent|nothing) (?:so |too |as |that |very )?(?:recent|new)|"
                r"earlier ones?)\b"), "older"),
    (re.compile(r"\b(?:cheaper|less expensive|more affordable|lower price|budget|inexpensive|cheap)\b"),
     "cheaper"),
    (re.compile(r"\b(?:pricier|more expensive|higher end|premium|high[- ]end)\b"), "pricier"),
    (re.compile(r"\b(?:lighter|light[- ]?hearted|something light|(?<!\bthe )(?<!\bin )light(?=\s*(?:and|"
                r"or|but|,|\.|!|\?|$)|\s+(?:comed(?:y|ies)|films?|movies?|ones?|watch|flicks?|fun|for|"
                r"to watch)\b)|"
                r"less (?:dark|serious|heavy|intense|grim|violent)|"
                r"not (?:so |too |as |that )?(?:dark|serious|heavy|grim|depressing|intense|sad|violent)|"
                r"not in the mood for (?:anything |something )?(?:too )?(?:dark|serious|heavy|grim|"
                r"depressing|intense|sad|violent)|"
                r"feel[- ]?good|happier|cheerful|upbeat|uplifting|funnier|more (?:fun|funny|comedic)|sillier|"
                r"goofier)\b"), "lighter"),
    (re.compile(r"\b(?:darker|grimmer|bleaker|grittier|more serious|heavier|more disturbing|edgier|"
                r"less (?:silly|goofy|childish|cheesy|lighthearted|light-hearted|fluffy)|"
                r"more intense|more violent|scarier|creepier|more (?:scary|frightening|terrifying))\b"),
     "darker"),
]  # fmt: skip

# How many items are asked for: "give me 3 thrillers", "recommend two comedies", "a couple of films",
# "top 5 horror movies" (a count before the kind of item, not "the first two" of a list)
COUNT_ASK = re.compile(
    r"\b(?:give me|show me|recommend(?: me)?|suggest|list|find me|name|i want|i need|need|want|top|"
    r"any|just|only)\s+(?:me\s+)?(?:a\s+)?(?P<n>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|"
    r"couple(?: of)?|few)\b(?!\s*(?:years?|decades?|minutes?|mins?|hours?|stars?|%|\$|dollars?|s\b))"
    r"|\ba\s+(?P<some>couple|few)\b(?!(?:\s+of)?\s+(?:years?|decades?|minutes?|hours?|times?|days?|"
    r"weeks?|months?)\b)(?:\s+of)?"
)


# "I usually watch comedies but tonight I want something different": away from the tastes just described
SOMETHING_DIFFERENT = re.compile(
    r"\bsomething (?:different|else|new)\b|\bfor a change\b|\bchange of pace\b|\bswitch it up\b"
)


# Comparatives that ask for more of a quality ("a stronger glue", "a louder one"), with their adjective: the
# adjective is what the item texts may say ("strong"); the comparative itself names no product. Those the
# critiques read (newer, older, cheaper, lighter, ...) and lengths (longer, shorter) are taken before.
COMPARATIVES = {
    w: root
    for root, forms in {
        "strong": "stronger strongest", "weak": "weaker", "loud": "louder loudest", "quiet": "quieter",
        "big": "bigger biggest", "small": "smaller smallest", "large": "larger largest",
        "thick": "thicker", "thin": "thinner", "bright": "brighter brightest", "fast": "faster fastest",
        "slow": "slower", "hard": "harder", "soft": "softer", "fine": "finer", "wide": "wider",
        "narrow": "narrower", "high": "higher", "tough": "tougher", "sharp": "sharper", "smooth": "smoother",
        "heavy": "heavier", "warm": "warmer", "hot": "hotter", "cold": "colder", "deep": "deeper",
        "tall": "taller", "safe": "safer", "clean": "cleaner", "simple": "simpler", "easy": "easier",
        "sturdy": "sturdier",
    }.items()
    for w in forms.split()
}  # fmt: skip
# "a louder one", "a stronger version", "bigger ones": the shown items, with more of a quality
ONE_AFTER = words("one ones version versions model models")
# nouns that count or sort what follows "of" ("a brand of pipettes", "a box of gloves"): the head is after it
CLASSIFIERS = words("brand brands kind kinds type types sort sorts pair pairs pack packs set sets box boxes")


# A wish about how long an item takes ("something short", "nothing too long", "a quick watch", "under 90
# minutes", "a two-hour film", "the running time"). Only read so where titles do not describe the items: in a
# shop "long nitrile gloves" or "a 60 minute timer" describe products and stay search words.
LENGTH = re.compile(
    r"(?:\b(?:not|nothing|isn't|is not|none)\s+(?:too|so|that|very|overly)\s+|"
    r"(?<!\bso )(?<!\bhow )(?<!\bas )(?<!\bin )(?<!\bbefore )\b)(?:short(?:er)?|long(?:er)?|lengthy|quick)\b"
    r"(?=\s*(?:and|or|but|though|tho|either|anyway|ideally|,|\.|!|\?|$)|\s+(?:[a-z]+\s+)?(?:films?|movies?|ones?|watch|flicks?)\b|"
    r"\s+(?:something|please|for|to watch|enough|(?:i|we) (?:can|could) (?:watch|finish))\b)"
    r"|\brun(?:ning)?[\s-]?times?\b"
    r"|\b(?:(?:under|less than|shorter than|at most|no (?:more|longer) than|within|over|more than|"
    r"longer than|at least|about|around)\s+)?(?:\d+(?:\.\d+)?|an?|one|two|three|half an?)[\s-]*"
    r"(?:minutes?|mins?|hours?|hrs?)(?:\s+long)?\b"
)

# A child's age ("my 8 year old", "for a 6-year-old", "a toddler") says the item is for kids: read as the
# word "kids", which each catalogue's vocabulary maps to its own values (films: Children) or to nothing.
CHILD_AGE = re.compile(
    r"\b(?:(?P<age>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)[\s-]*"
    r"(?:years?|yrs?)[\s-]*olds?|toddlers?|preschoolers?|little ones)\b",
    re.IGNORECASE,
)
SMALL_NUMBERS = dict(
    one=1, two=2, three=3, four=4, five=5, six=6, seven=7, eight=8, nine=9, ten=10, eleven=11, twelve=12
)


# Chat spellings, written out before anything reads the message: "can u recommend", "not 2 gory", "somethin"
_SLANG = [
    (re.compile(r"\bu\b(?![-\d.])", re.IGNORECASE), "you"),  # not U-571
    (re.compile(r"\bur\b", re.IGNORECASE), "your"),
    (re.compile(r"\b(?:pls|plz|plse)\b", re.IGNORECASE), "please"),
    (re.compile(r"\b(?:thx|thnx|tnx)\b", re.IGNORECASE), "thanks"),
    (re.compile(r"\b(somethin|nothin|anythin)\b", re.IGNORECASE), r"\1g"),
    (re.compile(r"\bluv\b", re.IGNORECASE), "love"),
    (re.compile(r"\b(?:cuz|coz)\b", re.IGNORECASE), "because"),
    (re.compile(r"\b(not|so|way|too)\s+2\s+(?=[a-z])", re.IGNORECASE), r"\1 too "),
]


def chat_slang(text: str) -> str:
    """``text`` with chat spellings written out ("not 2 gory" -> "not too gory", "u" -> "you")."""
    for pattern, repl in _SLANG:
        text = pattern.sub(repl, text)
    return text


def child_ages_as_kids(text: str) -> str:
    """``text`` with a child's age (12 or under) said as "kids"; older ages stay as they are."""

    def swap(m: re.Match[str]) -> str:
        age = m.group("age")
        if age is not None:
            n = int(age) if age.isdigit() else SMALL_NUMBERS[age.lower()]
            if n > 12:
                return m.group(0)
        return "kids"

    return CHILD_AGE.sub(swap, text)


# Words about prices (their beginnings): "cheap", "pricey", "expensive", "budget", "affordable"
MONEY_WORDS = ("price", "cheap", "dollar", "expensive", "pricier", "budget", "afford")

# Less of a quality, not none of it: "not too scary", "isn't overly silly", "nothing too dark", "less gory"
TONED_DOWN = re.compile(
    r"\b(?:(?:not|isn't|isnt|wasn't|nothing|aren't|arent|without being)\s+(?:too|overly|very|that|super)|"
    r"less)\s+([a-z][a-z-]+)\b"
)

# Too much of a quality ("I didn't like it much, too crude", "it was too scary for me"): less of it
TOO_MUCH = re.compile(r"(?<!\bnot )(?<!n't )(?<!\bnothing )(?<!\bisnt )\btoo\s+([a-z][a-z-]+)\b")

# A wish about the language of an item ("in English", "with subtitles", "not dubbed", "a foreign-language
# film"): only answerable where a facet holds languages.
LANGUAGE_WISH = re.compile(
    r"\b(?:in|into) (?:english|french|spanish|german|italian|japanese|korean|chinese|hindi|portuguese|"
    r"russian)\b|\b(?:english|french|spanish|german|italian|japanese|korean|chinese|hindi)[- ]language\b"
    r"|\bforeign[- ]language\b|\b(?:with |without |no )?subtitle[sd]?\b|\b(?:not )?dubbed\b"
)

# Where an item comes from, by the adjective of a country or region ("a french comedy", "korean
# thrillers", "bollywood"): only answerable where a facet holds countries; elsewhere the word still searches
# the item texts and the reply says so.
COUNTRY_WISH = re.compile(
    r"\b(?:french|korean|japanese|italian|british|english|spanish|german|chinese|indian|mexican|swedish|"
    r"danish|norwegian|russian|irish|australian|canadian|brazilian|iranian|turkish|polish|dutch|greek|"
    r"scandinavian|european|asian|bollywood|nollywood)\b(?!\s+(?:language|subtitles?|dub))"
)

# A recency word that is not a wish: it describes a viewing ("the most recent movie I watched", "my latest
# one", "his newer films I haven't seen") or gives leave ("I don't mind if it's older").
_VIEWING_AFTER = re.compile(
    r"^\s*(?:(?:movie|film|show|one|thing)s?\s+)?(?:that\s+)?(?:i|we)\s*(?:'ve|have|had|'d)?\s*"
    r"(?:just\s+|recently\s+|last\s+|actually\s+)?(?:saw|seen|watched|went to|read|bought|ordered|"
    r"purchased|got|tried|used)\b"
    r"|^\s*than\s+(?:i|me|we|us|you|he|she|they)\b"  # "I'm way older than I look"
)
_VIEWING_BEFORE = re.compile(
    r"(?:\b(?:my|our)\s+(?:very\s+)?"
    r"|\b(?:haven't|have not|havent|never)\s+(?:seen|watched)\s+(?:\w+\s+){0,3}"
    r"|\b(?:i|we)\s+(?:\w+\s+)?(?:saw|watched|'ve seen|have seen|had seen|read|bought|ordered|purchased|"
    r"tried|used)\s+(?:\w+\s+){0,3}"
    r"|\b(?:used to|grew up)\s+(?:\S+\s+){0,10}"
    # a habit: "I usually watch comedies but tonight ..."
    r"|\b(?:i|we)\s+(?:usually|normally|mostly|always|typically|often)\s+(?:watch|see|like|go for|buy|get|"
    r"read)\s+(?:\w+\s+){0,2}"
    r"|\b(?:it|this)\s*(?:'s|is|was|isn't|wasn't)\s+(?:not\s+)?(?:really\s+|quite\s+|exactly\s+|"
    r"very\s+|too\s+|kind of\s+|sort of\s+|more of\s+|more\s+|also\s+)*(?:an?\s+)?"
    r"|\b(?:don't|do not|dont|wouldn't|would not|won't) mind\s+"
    r"(?:if\s+(?:it's|it is|its|they're|they are)\s+)?(?:an?\s+|something\s+|some\s+)?)$"
)
# a yes/no question about what was shown ("Is this a movie from 2019?", "Does it have a lot of action?")
_ASKS_ABOUT_IT = re.compile(
    r"^\s*(?:is|are|was|were|does|do|did|has|have|will|would|can|could|isn't|aren't|wasn't|doesn't|don't|"
    r"didn't)\s+(?:it|this|that|they|these|those|"
    r"he|she|the (?:first|second|third|last|new|old|original) one|the (?:movie|film|show|book|product|item|"
    r"one))\b[^?]*\?"
)
_SENTENCE_END = re.compile(r"[.!?]+\s+|\n+")


# a question about the one item just suggested or shown ("Who stars in it?", "What's the story about?",
# "Can you tell me a bit about the plot?", "Has it been in theatres long?")
_ABOUT_IT = re.compile(
    r"\b(?:it|its|it's|this one|that one|this movie|that movie|this film|that film|the (?:movie|film|show|"
    r"book|product|item|one|story|storyline|story line|plot|premise|cast|actors?|actress|lead|leading \w+|"
    r"director|ending|trailer|ratings?|reviews?|music|songs|soundtrack|(?:special )?effects|acting|price|"
    r"size|brand))\b",
    re.IGNORECASE,
)
# ... unless it asks for other items ("any others like it?") or about the assistant ("how are you?")
_WANTS_OTHERS = re.compile(
    r"\b(?:others?|similar|another|more like|anything else|recommend\w*|recomend\w*|suggest\w*|"
    r"how are (?:you|u)|(?:movie|film|one) (?:did )?you(?:'ve| have)? (?:seen|watched|liked?|saw))\b",
    re.IGNORECASE,
)
_TELL_ME = re.compile(
    r"^\s*(?:(?:and|so|ok|okay|oh) )?(?:can you |could you |please )?tell me "
    r"(?:(?:a bit |a little |more )?about\b|(?:a bit |a little )?more\s*(?:please)?[.!?]?\s*$)",
    re.I,
)
_QUESTION = re.compile(
    r"^\s*(?:(?:and|so|but|ok|okay|oh|also|hmm|well),? )?"
    r"(?:who|whos|who's|what|whats|what's|how|when|where|which|why|is|are|was|were|does|do|did|has|have|"
    r"will|would|can|could|should|isn't|wasn't|doesn't)\b",
    re.IGNORECASE,
)


def asks_about_it(text: str) -> bool:
    """Whether the message is a question about "it": the one item suggested or shown just before."""
    sentences = [x for x in _SENTENCE_END.split(text) if x.strip()]
    last = sentences[-1] if sentences else text
    clauses = re.split(r"[;,]\s*", last)  # "That sounds interesting; what's it about?"
    question = text.rstrip().endswith("?") and any(_QUESTION.match(c) for c in clauses)
    telling = any(_TELL_ME.match(c) for c in clauses)
    return (question or telling) and bool(_ABOUT_IT.search(last)) and not _WANTS_OTHERS.search(text)


def describes_not_wishes(text: str, start: int, end: int) -> bool:
    """Whether the words at ``text[start:end]`` (a recency or age word, a category value, a year range)
    describe a viewing or an item ("the last action movie I saw", "I used to watch it in the eighties",
    "it's not quite sci-fi"), give leave ("I don't mind comedy") or ask about what was shown ("Is this a
    movie from 2019?") rather than ask for (or rule out) such items."""
    return bool(
        _VIEWING_AFTER.match(text[end:])
        or _VIEWING_BEFORE.search(text[max(0, start - 60) : start])
        or asks_about_shown(text, start)
    )


def asks_about_shown(text: str, pos: int) -> bool:
    """Whether ``pos`` stands in a yes/no question about what was shown ("Is the movie a tearjerker like
    Philadelphia?", "Those sound cool, do they have a lot of action?")."""
    return any(_ASKS_ABOUT_IT.match(text[at:]) for at in _clause_starts(text, pos))


def _clause_starts(text: str, pos: int) -> list[int]:
    """Where the sentence holding ``pos`` starts, and each clause after a comma in it before ``pos``
    ("Those sound cool, do they have a lot of action?")."""
    start = 0
    for m in _SENTENCE_END.finditer(text, 0, pos):
        start = m.end()
    return [start, *(start + m.end() for m in re.finditer(r",\s*", text[start:pos]))]


# Who a wish is for ("my wife loves ...", "for our kids"): after a possessive, not a search word. Words
# that also name a facet value ("kids": Children) are read by the facet extractor before the free text.
POSSESSIVES = words("my our his her their your")
RELATIONS = words(
    """wife husband partner girlfriend boyfriend fiance fiancee son sons daughter daughters kid kids child
    children boy boys girl girls mom mum mother dad father parents brother sister brothers sisters friend
    friends family grandma grandmother grandpa grandfather grandparents niece nephew nieces nephews
    cousin cousins students class team colleagues boss wife's husband's"""
)

STOPWORDS = words(
    """a an the and or but of to in on at for from with by about as into than then so too very really just
    i i'm i'd i've i'll me my mine we us our you your yours it it's its this that these those there here
    what which who whom how why when where is are was were be been being am do does did done can could would
    should will shall may might must want wanted wanna need like likes liked love loved something anything
    some any one ones another other more most watch watching watched see seen saw please give find
    recommend recommended suggest suggestion suggestions looking look get got let let's maybe perhaps also
    again kind sort type bit good great nice tonight today now thing things stuff lot lots ok okay yes yeah
    well make made similar same different new old year years era decade time times released release around
    hi hello hey thanks thank cheers sure yep hmm ah oh pick picks option options recommendation
    recommendations tell what's whats gotta try trying idea ideas mood feel feeling evening night weekend
    already have has had having im ive id dont doesnt didnt isnt wasnt not no nothing never all even still
    much many after else that's thats there's theres
    think know guess believe sounds sound enjoy enjoyed prefer favorite favourite fan into if because
    instead mind either neither anymore though loves likes enjoys adores hate hated hates dislike disliked
    dislikes loathe loathed despise despised he she him her his hers they them their theirs best better
    others came comes everything every everyone looks seems bored both lol haha twice way few couple
    flick flicks day can't cant cannot series saga franchise trilogy haven't havent hasn't while out
    usually normally typically tonight's lately along lines vein actually next highly especially up honestly
    only particularly favorites favourites fav genre genres keen fond"""
)


# What people say about how an item was received: how well it is rated, how well known it is. Catalogue-
# general: "popular" and "lesser known" read the popularity every bundle has; "highly rated" needs a log with
# explicit ratings (MovieLens), else it is said to be unsupported. A "hidden gem" is both well rated and less
# known. Each pattern -> the wishes it says (``WELL_RATED``, ``POPULAR``, ``LITTLE_KNOWN``).
WELL_RATED, POPULAR, LITTLE_KNOWN = "well_rated", "popular", "little_known"
_WELL = r"(?:highly|high|well|top|best|good|great|better|very well|really well)"
_GEMS = (
    r"(?:hidden|little|underrated|under-rated|overlooked) gems?|underrated|under-rated|under rated|overlooked"
)
_KNOWN = r"(?:(?:lesser|less|little)[ -]|not (?:so |very |too |that |as )?(?:well[ -])?)known"
_NOT_POPULAR = r"(?:not|nothing|less|none)(?: (?:so|too|very|that|as|overly))? (?:mainstream|popular)"
_UNSEEN = (
    r"not many people (?:have )?(?:seen|heard of)|(?:nobody|no one|few people)(?: has| have|'s)? "
    r"(?:seen|heard of)|most people (?:haven't|have not) (?:seen|heard of)"
)
_POPULAR = (
    r"(?:very |really |most )?popular(?: right now| at the moment| these days| lately)?|blockbusters?|"
    r"mainstream|crowd[ -]pleasers?|(?:well|widely)[ -]known|(?:everyone|everybody) (?:has )?(?:seen|knows)|"
    r"(?:big|huge|box[ -]office) hits?|most watched|trending"
)
RECEPTION: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(rf"\b(?:{_GEMS}|sleeper hits?)\b"), (WELL_RATED, LITTLE_KNOWN)),
    (
        re.compile(
            rf"\b(?:{_KNOWN}|obscure|under the radar|off the beaten (?:path|track)|{_NOT_POPULAR}|"
            rf"unknown ones?|{_UNSEEN})\b"
        ),
        (LITTLE_KNOWN,),
    ),
    (
        re.compile(
            rf"\b(?:{_WELL}[ -](?:rated|reviewed)|rated (?:highly|well)|(?:{_WELL}|rave) "
            r"(?:ratings?|reviews?|scores?)|critically acclaimed|(?:critics|audiences?) lov(?:e|ed)|"
            r"acclaimed|five[ -]stars?|5[ -]stars?)\b"
        ),
        (WELL_RATED,),
    ),
    (re.compile(rf"\b(?:{_POPULAR})\b"), (POPULAR,)),
)


def reception(s: str, used: bytearray) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, wishes) of each reception phrase in the normalised message ``s`` that no earlier rule
    claimed; the first pattern that matches a span wins ("not so popular" is little known, not popular)."""
    out: list[tuple[int, int, tuple[str, ...]]] = []
    taken = bytearray(used)
    for pattern, wishes in RECEPTION:
        for m in pattern.finditer(s):
            if not any(taken[m.start() : m.end()]):
                taken[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
                out.append((m.start(), m.end(), wishes))
    return sorted(out)


# Words about ratings or reviews (their beginnings), and a wish about them ("a highly rated multimeter",
# "the ones with good ratings")
RATING_WORDS = ("rating", "rated", "review")
RATING_WISH = re.compile(
    r"\b(?:(?:highly|well|top|best|good|high|low|poorly|better)[ -])?(?:" + "|".join(RATING_WORDS) + r")\w*"
)


def without_unsupported(text: str, unsupported: list[str]) -> str:
    """``text`` without the wishes the catalogue cannot answer (a length, a language, ratings): the message
    as typed is also a dense query, and "something short, under 90 minutes" put *The Big Short* first."""
    for kind, pattern in (("length", LENGTH), ("language", LANGUAGE_WISH), ("ratings", RATING_WISH)):
        if kind in unsupported:
            text = re.compile(pattern.pattern, pattern.flags | re.IGNORECASE).sub(" ", text)
    return " ".join(text.split())


# Where the noun phrase that names what is wanted ends: "safety glasses | that fit over ...",
# "a soldering iron | for a beginner", "nitrile gloves | , large"
_HEAD_ENDS = words(
    "for to that which who with without under over from of in on at by like but and or is are was were has "
    "have does do can should would will"
)
_HEAD_ENDS |= frozenset(",.!?;:")


def head_words(text: str) -> list[str] | None:
    """The content words of the first noun phrase of a request, up to where it ends ("I need safety glasses
    that fit over my glasses" -> safety, glasses); comparatives name nothing ("a stronger glue" -> glue).
    None when the phrase is a pronoun ("one with a digital display"): the head of an earlier request."""
    out: list[str] = []
    pronoun = last_pronoun = False
    text = text.lower()
    for pattern, _ in RECEPTION:  # "a lesser known brand of ...": how it was received names no product
        text = pattern.sub(" ", text)
    tokens = re.findall(r"[\w'-]+|[,.!?;:]", text)
    if len(tokens) > 1 and tokens[0] in ("something", "anything", "one") and (
        tokens[1] in ("more", "less") or tokens[1] in COMPARATIVES
        or (tokens[1].endswith("er") and len(tokens[1]) > 4 and tokens[1] not in ("other", "under", "after"))
    ):  # fmt: skip
        return None  # "something more professional": more of the product asked before
    for n, w in enumerate(tokens):
        if w == "of" and n and out and out[-1] == tokens[n - 1] in CLASSIFIERS:
            out.pop()  # "a box of gloves": gloves
            continue
        if w in _HEAD_ENDS:
            if out and not last_pronoun:
                break
            if pronoun:
                return None  # "one with a display", "the black ones, please", "which one is the most ..."
            continue
        if w in ONE_AFTER or w not in STOPWORDS:  # "the black ones please": 'please' changes nothing
            last_pronoun = w in ONE_AFTER
        pronoun = pronoun or last_pronoun
        if w not in STOPWORDS and w not in COMPARATIVES and w not in ONE_AFTER and w[0].isalpha():
            out.append(w)
    return None if pronoun and (not out or last_pronoun) else out
