"""Realistic, deterministic sample spreadsheets for a (fictional) county: residents and past grants.

Used by `notifier demo` (a few thousand rows) and by benchmarks (up to a million rows). The
people are grouped in households (head, spouse, children, grandchildren, an elderly parent)
that share an address, household size, per-capita income, house grade, low-income status and
farmland, as in a real township register. Each village's clerk has a habit of spelling
(农业户口 or 农村, 是/否 or 1/0 or Y/N, A or A级, 1980-02-03 or 1980年2月3日, ...), all of them
spellings listed in rules/fields.yaml.

ID numbers are valid 18-character PRC numbers (ISO 7064 MOD 11-2 check character) whose
birth date matches 出生日期 and whose 17th digit matches 性别; mobile numbers and landlines are
valid for `phonenumbers`. Some rows are made invalid on purpose (`invalid=`) and a few carry an
unusable phone or e-mail that only warrants a warning; both are listed by spreadsheet row.

Speed: everything seed-independent (weighted name pools, 8192 household shapes and economies,
every birth date's spellings and ID-check partial sum) is precomputed once per process (~0.2 s);
per row there are only a few `getrandbits` picks from power-of-two pools of one
`random.Random(seed)`, string joins and one list, and the cyclic garbage collector is paused
meanwhile. About 8-12 s per million rows on a small 2-vCPU VM.
"""

from __future__ import annotations

import csv
import gc
import random
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "SampleData",
    "RESIDENTS_HEADER",
    "GRANTS_HEADER",
    "generate",
    "write_csv",
    "write_xlsx",
    "id_check_char",
]

RESIDENTS_HEADER: list[str] = [
    "居民编号",
    "姓名",
    "性别",
    "出生日期",
    "身份证号",
    "户籍类型",
    "乡镇",
    "村",
    "家庭住址",
    "手机号码",
    "电子邮箱",
    "首选通知方式",
    "家庭人口数",
    "家庭人均年收入",
    "房屋安全等级",
    "是否低保对象",
    "低保金额",
    "是否残疾",
    "承包耕地面积",
]
GRANTS_HEADER: list[str] = ["居民编号", "补助类别", "发放日期", "金额"]

# Column positions in a resident row.
(
    C_ID,
    C_NAME,
    C_GENDER,
    C_BIRTH,
    C_IDNO,
    C_REG,
    C_TOWN,
    C_VILLAGE,
    C_ADDR,
    C_PHONE,
    C_EMAIL,
    C_PREF,
    C_HHSIZE,
    C_INCOME,
    C_GRADE,
    C_DIBAO,
    C_DIBAO_AMT,
    C_DISABLED,
    C_LAND,
) = range(len(RESIDENTS_HEADER))

REASON_MISSING_ID = "missing 居民编号"
REASON_CHECK_DIGIT = "wrong check digit in 身份证号"
REASON_INCOME = "unparseable 家庭人均年收入"
REASON_BIRTH_DATE = "impossible 出生日期"
WARN_PHONE = "unusable 手机号码"
WARN_EMAIL = "unusable 电子邮箱"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_MAX_AGE = 95

PROVINCE, COUNTY, LANDLINE_AREA = "河南省", "桐山县", "0371"
# Area codes in ID numbers: the county's own (most people), neighbouring counties, and a few
# spouses from other provinces. Real-looking, not claims about real places.
_AREA_CODES = (
    ("410122", 78.0),
    ("410181", 5.0),
    ("410182", 3.0),
    ("410183", 3.0),
    ("410184", 3.0),
    ("410185", 2.0),
    ("411627", 2.0),
    ("341221", 1.5),
    ("130528", 1.0),
    ("372925", 1.5),
)

# (township, [(village, urban share)])
_TOWNSHIPS: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = (
    (
        "城关镇",
        (
            ("东关社区", 0.9),
            ("西关社区", 0.9),
            ("南街社区", 0.85),
            ("北街社区", 0.85),
            ("建设路社区", 0.9),
            ("人民路社区", 0.9),
            ("城郊村", 0.3),
            ("八里庄村", 0.2),
            ("十里铺村", 0.15),
        ),
    ),
    (
        "柳林镇",
        (
            ("柳林村", 0.1),
            ("李庄村", 0.04),
            ("王楼村", 0.04),
            ("张湾村", 0.03),
            ("刘集村", 0.05),
            ("前进村", 0.03),
            ("杏花村", 0.03),
            ("河口村", 0.04),
        ),
    ),
    (
        "石桥镇",
        (
            ("石桥村", 0.1),
            ("陈岗村", 0.03),
            ("杨树村", 0.03),
            ("赵寨村", 0.04),
            ("三里桥村", 0.05),
            ("清水村", 0.03),
            ("白塔村", 0.03),
        ),
    ),
    (
        "马庄乡",
        (
            ("马庄村", 0.06),
            ("孙营村", 0.02),
            ("朱屯村", 0.02),
            ("胡桥村", 0.03),
            ("郭庄村", 0.02),
            ("双庙村", 0.02),
        ),
    ),
    (
        "白沙镇",
        (
            ("白沙村", 0.1),
            ("何湾村", 0.03),
            ("高庄村", 0.03),
            ("罗寨村", 0.03),
            ("郑楼村", 0.04),
            ("梁庄村", 0.03),
            ("太平村", 0.03),
            ("红旗村", 0.04),
        ),
    ),
    (
        "高庙乡",
        (
            ("高庙村", 0.05),
            ("谢营村", 0.02),
            ("宋集村", 0.03),
            ("唐岗村", 0.02),
            ("许庄村", 0.02),
            ("青龙村", 0.02),
        ),
    ),
    (
        "大王庄乡",
        (
            ("大王庄村", 0.05),
            ("韩寨村", 0.02),
            ("冯庄村", 0.02),
            ("邓湾村", 0.03),
            ("曹楼村", 0.02),
            ("新庄村", 0.02),
            ("南岗村", 0.03),
        ),
    ),
)
_ROADS = ("建设路", "人民路", "解放路", "文化路", "中山街", "东风路", "健康路", "车站路", "工业路", "育才街")

# Surname, pinyin, share of the population (%), roughly national frequencies.
_SURNAMES = """王wang7.1 李li7.0 张zhang6.7 刘liu5.4 陈chen4.5 杨yang3.1 黄huang2.2 赵zhao2.0 吴wu1.9
周zhou1.9 徐xu1.5 孙sun1.5 马ma1.4 朱zhu1.3 胡hu1.3 郭guo1.2 何he1.2 高gao1.1 林lin1.1 罗luo1.1
郑zheng1.0 梁liang0.9
谢xie0.8 宋song0.8 唐tang0.8 许xu0.7 韩han0.7 冯feng0.7 邓deng0.7 曹cao0.7 彭peng0.6 曾zeng0.6 肖xiao0.6
田tian0.6 董dong0.5 袁yuan0.5 潘pan0.5 于yu0.5 蒋jiang0.5 蔡cai0.5 余yu0.5 杜du0.5 叶ye0.4 程cheng0.4 苏su0.4
魏wei0.4 吕lv0.4 丁ding0.4 任ren0.4 沈shen0.4 姚yao0.4 卢lu0.4 姜jiang0.3 崔cui0.3 钟zhong0.3 谭tan0.3 陆lu0.3
汪wang0.3 范fan0.3 金jin0.3 石shi0.3 廖liao0.3 贾jia0.3 夏xia0.3 韦wei0.3 付fu0.3 方fang0.3 白bai0.3 邹zou0.3
孟meng0.3 熊xiong0.3 秦qin0.3 邱qiu0.3 江jiang0.3 尹yin0.2 薛xue0.2 闫yan0.2 段duan0.2 雷lei0.2 侯hou0.2
龙long0.2 史shi0.2 陶tao0.2 黎li0.2 贺he0.2 顾gu0.2 毛mao0.2 郝hao0.2 龚gong0.2 邵shao0.2 万wan0.2 钱qian0.2
严yan0.2 武wu0.2 戴dai0.2 孔kong0.2 常chang0.1 欧阳ouyang0.04 司马sima0.02 诸葛zhuge0.01 上官shangguan0.01"""

# Given-name characters by gender and generation (born before ~1970, ~1970-2000, after 2000).
_GIVEN_CHARS = {
    ("m", 0): "建jian 国guo 华hua 明ming 德de 永yong 福fu 贵gui 富fu 文wen 军jun 民min 强qiang 忠zhong 学xue "
    "林lin 成cheng 祥xiang 发fa 庆qing 海hai 振zhen 春chun 长chang 荣rong 生sheng 山shan 有you 保bao 全quan",
    (
        "m",
        1,
    ): "伟wei 磊lei 勇yong 军jun 杰jie 涛tao 斌bin 超chao 鹏peng 刚gang 辉hui 飞fei 亮liang 波bo 峰feng "
    "宁ning 东dong 志zhi 俊jun 海hai 平ping 兵bing 新xin 健jian 龙long 晓xiao 剑jian 阳yang 卫wei 红hong",
    (
        "m",
        2,
    ): "浩hao 宇yu 轩xuan 子zi 博bo 文wen 睿rui 泽ze 然ran 航hang 一yi 鑫xin 俊jun 晨chen 阳yang 皓hao "
    "嘉jia 豪hao 天tian 铭ming 佳jia 宸chen 梓zi 逸yi 昊hao 诚cheng 凯kai 锦jin 奕yi 骏jun",
    (
        "f",
        0,
    ): "秀xiu 英ying 桂gui 兰lan 玉yu 凤feng 珍zhen 芳fang 春chun 梅mei 花hua 香xiang 荣rong 琴qin 淑shu "
    "翠cui 金jin 云yun 莲lian 素su 华hua 爱ai 菊ju 凤feng 霞xia 萍ping 巧qiao 月yue 彩cai 改gai",
    ("f", 1): "丽li 娟juan 艳yan 敏min 静jing 燕yan 红hong 霞xia 玲ling 芳fang 娜na 萍ping 慧hui 丹dan 莉li "
    "晓xiao 雪xue 婷ting 颖ying 琳lin 倩qian 小xiao 美mei 洁jie 红hong 青qing 利li 亚ya 宏hong 杰jie",
    (
        "f",
        2,
    ): "梓zi 涵han 欣xin 怡yi 诗shi 雨yu 萱xuan 可ke 馨xin 佳jia 悦yue 思si 琪qi 语yu 若ruo 依yi 晨chen "
    "梦meng 瑶yao 紫zi 一yi 嘉jia 子zi 妍yan 彤tong 雅ya 沐mu 安an 乐le 诺nuo",
}
_SINGLE_SHARE = {0: 0.15, 1: 0.3, 2: 0.12}  # share of one-character given names per generation

_MOBILE_PREFIXES = (
    ("130", 4),
    ("131", 4),
    ("132", 4),
    ("133", 3),
    ("134", 5),
    ("135", 7),
    ("136", 6),
    ("137", 6),
    ("138", 7),
    ("139", 7),
    ("150", 4),
    ("151", 4),
    ("152", 4),
    ("153", 2),
    ("155", 3),
    ("156", 3),
    ("157", 2),
    ("158", 4),
    ("159", 4),
    ("166", 2),
    ("173", 1),
    ("175", 1),
    ("176", 2),
    ("177", 2),
    ("178", 1),
    ("180", 2),
    ("181", 2),
    ("182", 3),
    ("183", 3),
    ("185", 3),
    ("186", 3),
    ("187", 3),
    ("188", 2),
    ("189", 2),
    ("191", 1),
    ("195", 1),
    ("198", 1),
    ("199", 2),
)
_EMAIL_DOMAINS = (
    ("163.com", 30),
    ("qq.com", 25),
    ("126.com", 15),
    ("sina.com", 8),
    ("139.com", 8),
    ("foxmail.com", 6),
    ("hotmail.com", 3),
    ("yeah.net", 3),
    ("sohu.com", 2),
)
_BAD_PHONES = ("12345", "138123", "1380000", "0000", "110")
_BAD_EMAILS = ("wang@", "li.qq.com", "zhang@163", "@163.com", "liu at 126.com")
_CN_DIGITS = "〇一二三四五六七八九十"


@dataclass
class SampleData:
    """Generated spreadsheets: residents and grants (header + rows of strings, "" = empty cell)."""

    residents_header: list[str]
    residents_rows: list[list[str]]
    grants_header: list[str]
    grants_rows: list[list[str]]
    invalid_rows: dict[int, str] = field(default_factory=dict)  # spreadsheet row (header = 1) -> reason
    warning_rows: dict[int, str] = field(default_factory=dict)  # rows that import with a contact warning


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of a PRC ID number's first 17 digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=False)) % 11]


def _wsum(digits: str, start: int) -> int:
    return sum(int(d) * _ID_WEIGHTS[start + i] for i, d in enumerate(digits))


def _pool(items: list[tuple[Any, float]], bits: int) -> list[Any]:
    """Exactly 2**bits slots, each item in proportion to its weight (at least once), for picks
    with `pool[getrandbits(bits)]`: a third of the cost of `pool[int(random() * len(pool))]`."""
    size = 1 << bits
    total = sum(w for _, w in items)
    quotas = [w / total * size for _, w in items]
    counts = [max(1, int(q)) for q in quotas]
    if sum(counts) > size:
        raise ValueError(f"{len(items)} items do not fit in {size} slots")
    by_remainder = sorted(range(len(items)), key=lambda i: int(quotas[i]) - quotas[i])
    for i in range(size - sum(counts)):
        counts[by_remainder[i % len(items)]] += 1
    out: list[Any] = []
    for (item, _), c in zip(items, counts, strict=False):
        out.extend([item] * c)
    return out


# A household's shape: its size (家庭人口数) and the members listed in the register, head first,
# each (age, male, is the spouse). An economy: (income cell, income, house grade, dibao, dibao cell).
Shape = tuple[int, str, tuple[tuple[int, bool, bool], ...]]
Economy = tuple[str, float, str, bool, str]


@dataclass(frozen=True)
class _Static:
    """Seed-independent pools, built once per process; picks from them are seeded."""

    surnames: list[tuple[str, str]]  # 4096 weighted (surname, pinyin)
    village_surnames: dict[str, list[tuple[str, str]]]  # 4096, a third the village's own (李庄村 -> 李)
    given: list[list[list[tuple[str, str]]]]  # [male][age] -> 2048 (given name, pinyin)
    areas: list[tuple[str, int, int]]  # 256 weighted (area code, weighted digit sum, index)
    seqs: list[list[tuple[str, int]]]  # [male] -> 500 (3-digit sequence, weighted digit sum)
    mobiles: list[int]  # 256 weighted prefixes, e.g. 138_0000_0000
    domains: list[str]  # 128 weighted e-mail domains
    shapes: list[Shape]  # 8192
    economies: list[list[Economy]]  # [urban] -> 8192
    lands: list[list[tuple[float, str]]]  # [household size] -> 1024 (mu, cell)
    streets: list[str]  # 建设路58号
    flats: list[str]  # 3号楼2单元402
    house_numbers: list[str]  # 128: 1号 ...


@lru_cache(maxsize=1)
def _static() -> _Static:
    surnames: list[tuple[tuple[str, str], float]] = []
    for tok in _SURNAMES.split():
        i = next(k for k, ch in enumerate(tok) if ch.isascii())
        j = next(k for k, ch in enumerate(tok) if ch.isdigit())
        surnames.append(((tok[:i], tok[i:j]), float(tok[j:])))
    pinyin = dict(sur for sur, _ in surnames)
    village_surnames = {}
    for _, villages in _TOWNSHIPS:
        for name, _ in villages:
            first = name[1] if name.startswith("大") else name[0]
            if first in pinyin and not name.endswith("社区"):
                village_surnames[name] = _pool(
                    [((first, pinyin[first]), 0.35)] + [(s, w * 0.65) for s, w in surnames], 12
                )
    given: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for key, text in _GIVEN_CHARS.items():
        chars = list(dict.fromkeys((tok[0], tok[1:]) for tok in text.split()))
        pairs = [(a + b, pa + pb) for a, pa in chars for b, pb in chars if a != b]
        if key[0] == "f" and key[1] > 0:  # 婷婷, 丹丹
            pairs += [(a + a, pa + pa) for a, pa in chars[:12]]
        share = _SINGLE_SHARE[key[1]]
        singles = [(c, len(pairs) * share / (1 - share) / len(chars)) for c in chars]
        given[key] = _pool([(p, 1.0) for p in pairs] + singles, 11)
    by_age = [
        [given[(g, 0 if age >= 55 else 1 if age >= 25 else 2)] for age in range(_MAX_AGE + 1)] for g in "fm"
    ]
    areas = [((code, _wsum(code, 0), i), w) for i, (code, w) in enumerate(_AREA_CODES)]
    seqs = [[(f"{s:03d}", _wsum(f"{s:03d}", 14)) for s in range(1000) if s % 2 == male] for male in (0, 1)]
    return _Static(
        surnames=_pool(surnames, 12),
        village_surnames=village_surnames,
        given=by_age,
        areas=_pool(areas, 8),
        seqs=seqs,
        mobiles=_pool([(int(p) * 100_000_000, w) for p, w in _MOBILE_PREFIXES], 8),
        domains=_pool(list(_EMAIL_DOMAINS), 7),
        shapes=_shapes(),
        economies=[_economies(False), _economies(True)],
        lands=[[], *(_lands(size) for size in range(1, 8))],
        streets=[f"{road}{num}号" for road in _ROADS for num in range(1, 301)],
        flats=[
            f"{b}号楼{u}单元{f}0{k}"
            for b in range(1, 13)
            for u in range(1, 5)
            for f in range(1, 8)
            for k in range(1, 5)
        ],
        house_numbers=[f"{i}号" for i in range(1, 129)],
    )


def _shapes() -> list[Shape]:
    """8192 households: size, and the ages and sexes of head, spouse, (grand)children, a parent."""
    rng = random.Random(1)
    r = rng.random
    sizes = _pool([(1, 17), (2, 28), (3, 22), (4, 17), (5, 9), (6, 5), (7, 2)], 10)
    out: list[Shape] = []
    for _ in range(8192):
        size = sizes[int(r() * 1024)]
        if size == 1:
            head_age = 24 + int(r() * 50) if r() < 0.4 else 60 + int(r() * r() * 36)
        elif size == 2 and r() < 0.5:  # an elderly couple
            head_age = 55 + int(r() * r() * 41)
        else:
            head_age = 26 + int(r() * 46) if r() < 0.85 else 60 + int(r() * r() * 30)
        head_male = r() < (0.5 if size == 1 else 0.85)  # many who live alone are widows
        members = [(head_age, head_male, False)]
        if size >= 2 and r() < 0.85:
            spouse_age = head_age + (int(r() * 9) - 5 if head_male else int(r() * 9) - 2)
            members.append((min(_MAX_AGE, max(20, spouse_age)), not head_male, True))
        has_parent = False
        while len(members) < size:
            male = r() < 0.52
            if not has_parent and 40 <= head_age <= 68 and r() < 0.18:
                has_parent = True
                age = min(_MAX_AGE, head_age + 22 + int(r() * 10))
            elif head_age >= 58 and r() < 0.5:  # grandchildren
                age = max(0, head_age - 45 - int(r() * 15))
            else:
                age = head_age - 22 - int(r() * 14)
                if age < 0:
                    age = int(r() * max(1, head_age - 19))
            members.append((age, male, False))
        listed = size if size == 1 or r() < 0.9 else size - 1  # one member registered elsewhere
        out.append((size, str(size), tuple(members[:listed])))
    return out


def _economies(urban: bool) -> list[Economy]:
    """8192 household economies: skewed per-capita income (log-normal, 2,000-60,000, ~3% not
    recorded), house grade (C/D mostly rural and poorer), low-income status (~8%) and amount."""
    rng = random.Random(2 + urban)
    r = rng.random
    out: list[Economy] = []
    for _ in range(8192):
        income = rng.lognormvariate(9.25, 0.55)
        u = r()
        if urban:
            income *= 2.0
            grade = "A" if u < 0.7 else "B" if u < 0.97 else "C"
        else:
            grade = "A" if u < 0.32 else "B" if u < 0.87 else "C" if u < 0.965 else "D"
            if income < 7500 and u < 0.87 and r() < 0.2:
                grade = "C" if r() < 0.7 else "D"
        if grade in ("C", "D"):
            income *= 0.7
        income = min(60000.0, max(2000.0, income))
        dibao = income < 6000 and r() < 0.35 or income < 9000 and r() < 0.08 or r() < 0.005
        if dibao:
            income = min(income, 2000 + r() * 5500)
        income = round(income, 2)
        u = r()
        income_s = "" if u < 0.03 else f"{income:.2f}" if u < 0.13 else str(int(income) // 10 * 10)
        out.append((income_s, income, grade, dibao, str(300 + 10 * int(r() * 61)) if dibao else ""))
    return out


def _lands(size: int) -> list[tuple[float, str]]:
    """1024 contracted farmland areas (mu, one decimal) of rural households of this size."""
    rng = random.Random(10 + size)
    out = []
    for _ in range(1024):
        land = 0.0 if rng.random() < 0.06 else round(min(15.0, max(0.3, size * rng.uniform(0.6, 2.4))), 1)
        out.append((land, f"{land:.1f}" if land else "0"))
    return out


@dataclass(frozen=True)
class _Dates:
    """Per day before `today` (index = days back): spellings, ID digits and their weighted sum."""

    iso: list[str]
    styles: list[list[str]]  # iso, 1980/2/3, 1980年2月3日, 19800203
    compact: list[str]
    wsum: list[int]
    year: list[int]
    month: list[int]
    dibao_days: list[int]  # days back to the 5th of each of the last 60 months


@lru_cache(maxsize=4)
def _dates(today: date) -> _Dates:
    span = (_MAX_AGE + 1) * 366 + 1
    base = today.toordinal()
    ds = [date.fromordinal(base - k) for k in range(span)]
    iso = [d.isoformat() for d in ds]
    compact = [s.replace("-", "") for s in iso]
    slash = [f"{d.year}/{d.month}/{d.day}" for d in ds]
    chinese = [f"{d.year}年{d.month}月{d.day}日" for d in ds]
    ysum = {y: _wsum(f"{y:04d}", 6) for y in range(ds[-1].year, today.year + 1)}
    msum = [0] + [_wsum(f"{m:02d}", 10) for m in range(1, 13)]
    dsum = [0] + [_wsum(f"{d:02d}", 12) for d in range(1, 32)]
    wsum = [ysum[d.year] + msum[d.month] + dsum[d.day] for d in ds]
    dibao_days = []
    y, m = today.year, today.month
    for _ in range(60):
        fifth = date(y, m, 5)
        if fifth < today:
            dibao_days.append(base - fifth.toordinal())
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return _Dates(
        iso,
        [iso, slash, chinese, compact],
        compact,
        wsum,
        [d.year for d in ds],
        [d.month for d in ds],
        dibao_days,
    )


@dataclass
class _Village:
    """A village (or urban community) and the spelling habits of the clerk who keeps its register."""

    township: str
    name: str
    urban: float  # share of households with urban registration
    weight: float
    community: bool
    surnames: list[tuple[str, str]]
    reg_rural: str
    reg_urban: str
    yes: str
    no: str
    grades: dict[str, str]  # A -> A or A级
    births: list[str]  # by days back: 1980-02-03, 1980/2/3, 1980年2月3日 or 19800203
    male: str
    female: str
    addr_prefix: str  # [省县]乡镇[村]
    groups: list[str]  # 256 slots: 3组 or 三组


def _villages(rng: random.Random, st: _Static, dt: _Dates) -> list[_Village]:
    out = []
    for town, villages in _TOWNSHIPS:
        for name, urban in villages:
            community = name.endswith("社区")
            reg = rng.choices(
                [("农业户口", "非农业户口"), ("农业", "非农业"), ("农村", "城镇"), ("农村", "城市")],
                [45, 25, 20, 10],
            )[0]
            yes_no = rng.choices([("是", "否"), ("1", "0"), ("Y", "N")], [70, 15, 15])[0]
            suffix = rng.choices(["", "级"], [60, 40])[0]
            male_female = rng.choices([("男", "女"), ("M", "F")], [95, 5])[0]
            prefix = rng.choices(["", COUNTY, PROVINCE + COUNTY], [50, 30, 20])[0]
            births = rng.choices(dt.styles, [60, 20, 10, 10])[0]
            cn_groups = rng.random() < 0.4
            n_groups = rng.randint(4, 12)
            groups = [(_cn_number(g) if cn_groups else str(g)) + "组" for g in range(1, n_groups + 1)]
            out.append(
                _Village(
                    township=town,
                    name=name,
                    urban=urban,
                    weight=rng.uniform(0.6, 1.6) * (1.6 if community else 1.0),
                    community=community,
                    surnames=st.village_surnames.get(name, st.surnames),
                    reg_rural=reg[0],
                    reg_urban=reg[1],
                    yes=yes_no[0],
                    no=yes_no[1],
                    grades={g: g + suffix for g in "ABCD"},
                    births=births,
                    male=male_female[0],
                    female=male_female[1],
                    addr_prefix=prefix + town + ("" if community else name),
                    groups=[groups[i % n_groups] for i in range(256)],
                )
            )
    return out


def _cn_number(k: int) -> str:
    return _CN_DIGITS[k] if k <= 10 else "十" + _CN_DIGITS[k - 10]


def generate(n: int, *, seed: int = 2026, invalid: int = 0, today: date | None = None) -> SampleData:
    """`n` residents in households, their past grants (~0.3 per resident, last 5 years before
    `today`), `invalid` deliberately invalid rows spread through the file and a few rows
    (about one per 400) whose phone or e-mail is unusable. Same arguments, same data.

    Newborns are born up to `today`; the importer rejects birth dates after the real date, so
    pass a `today` in the future only if the import runs with a matching clock."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0 <= invalid <= n:
        raise ValueError(f"invalid must be between 0 and n ({n})")
    today = today or date.today()
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small lists; the cyclic GC would rescan them repeatedly
    try:
        return _generate(n, seed, invalid, today)
    finally:
        if was_enabled:
            gc.enable()


def _generate(n: int, seed: int, invalid: int, today: date) -> SampleData:
    rng = random.Random(seed)
    r, gb = rng.random, rng.getrandbits
    st = _static()
    dt = _dates(today)
    vpool: list[_Village] = _pool([(v, v.weight) for v in _villages(rng, st, dt)], 11)

    # Rows to spoil, chosen first so that their residents get no grants (they are never imported).
    spoiled = rng.sample(range(n), invalid) if invalid else []
    taken = set(spoiled)
    warned: list[int] = []
    for _ in range(min(n - invalid, (n + 399) // 400)):
        k = rng.randrange(n)
        while k in taken:
            k = rng.randrange(n)
        taken.add(k)
        warned.append(k)
    no_grants = set(spoiled)

    surnames, given, areas, seqs, mobiles, domains = (
        st.surnames,
        st.given,
        st.areas,
        st.seqs,
        st.mobiles,
        st.domains,
    )
    shapes, (econ_rural, econ_urban), lands = st.shapes, st.economies, st.lands
    streets, flats, house_numbers = st.streets, st.flats, st.house_numbers
    n_streets, n_flats = len(streets), len(flats)
    iso, compact, dsum, years, dibao_days = dt.iso, dt.compact, dt.wsum, dt.year, dt.dibao_days
    age_back = [int(age * 365.2425) for age in range(_MAX_AGE + 1)]
    p_disabled = [0.03 if age < 60 else 0.08 if age < 80 else 0.16 for age in range(_MAX_AGE + 1)]
    # Days back (within 5 years) when farm subsidies (April-June) and disaster relief (June-September)
    # are paid.
    farm_days = [
        days
        for days in (
            [b for b in range(1, 1826) if 4 <= dt.month[b] <= 6 and dt.year[b] == y]
            for y in range(today.year - 5, today.year + 1)
        )
        if days
    ]  # per year
    flood_days = [b for b in range(1, 1826) if 6 <= dt.month[b] <= 9]
    n_flood_days = len(flood_days)
    check = _ID_CHECK
    rid_format = f"R%0{max(7, len(str(n)))}d"
    span2 = len(compact) * 2
    id_seq = [0] * (len(_AREA_CODES) * span2)  # (area, birth date, sex) -> people numbered so far
    rows: list[list[str]] = []
    grants: list[list[str]] = []
    append, gappend = rows.append, grants.append

    def styled_mobile(p: str) -> str:
        u = r()
        return (
            f"{p[:3]} {p[3:7]} {p[7:]}"
            if u < 0.25
            else f"{p[:3]}-{p[3:7]}-{p[7:]}"
            if u < 0.5
            else "+86 " + p
            if u < 0.7
            else "86" + p
            if u < 0.85
            else f"+86 {p[:3]} {p[3:7]} {p[7:]}"
        )

    def landline() -> str:
        local = str(50_000_000 + gb(25) % 40_000_000)
        u = r()
        return (
            f"{LANDLINE_AREA}-{local}"
            if u < 0.6
            else LANDLINE_AREA + local
            if u < 0.8
            else f"{LANDLINE_AREA} {local[:4]} {local[4:]}"
            if u < 0.9
            else f"({LANDLINE_AREA}){local}"
        )

    def email_for(sur_py: str, gpy: str, year: int) -> str:
        dom = domains[gb(7)]
        u = r()
        return (
            f"{100_000_000 + gb(32) % 3_900_000_000}@qq.com"
            if u < 0.3
            else f"{sur_py}{gpy}{year % 100:02d}@{dom}"
            if u < 0.5
            else f"{sur_py}{gpy}{year}@{dom}"
            if u < 0.65
            else f"{sur_py}.{gpy}{gb(8) % 100}@{dom}"
            if u < 0.8
            else f"{gpy}{sur_py}{gb(16) % 1000}@{dom}"
            if u < 0.92
            else f"{sur_py}_{gpy}@{dom}"
        )

    def preferred(u: float, phone: str, email: str, age: int) -> str:
        """首选通知方式 for the ~12% who stated one (u < 0.12), consistent with their contacts."""
        if email and (not phone or u < 0.05):
            return "邮件" if u < 0.1 else "电子邮件"
        if phone and phone[0] not in "0(" and u < 0.08:
            return "短信" if u < 0.075 else "手机短信"
        if not phone or age >= 70:
            return "信件" if u < 0.1 else "纸质" if u < 0.11 else "邮寄"
        return ""

    def household_grants(rid: str, land: float, urban: bool, grade: str, income: float) -> None:
        """Grants paid to a household (recorded against its head)."""
        if land and r() < 0.42:  # once a year, in spring
            for year in rng.sample(farm_days, 1 + (r() < 0.25)):
                gappend(
                    [
                        rid,
                        "耕地地力保护补贴" if r() < 0.6 else "涉农补贴",
                        iso[year[gb(12) % len(year)]],
                        f"{land * (100 + gb(8) % 11):.2f}",
                    ]
                )
        if not urban and (grade in ("C", "D") and r() < 0.3 or r() < 0.012):
            thousands = 8 + gb(8) % 8 if grade != "D" else 18 + gb(8) % 17
            gappend(
                [
                    rid,
                    "农村危房改造" if r() < 0.6 else "危房改造",
                    iso[1 + gb(16) % 1825],
                    str(1000 * thousands),
                ]
            )
        if r() < 0.04:
            gappend(
                [
                    rid,
                    "自然灾害救助" if r() < 0.5 else "灾害救助",
                    iso[flood_days[gb(12) % n_flood_days]],
                    str(100 * (5 + gb(8) % 26)),
                ]
            )
        if urban and income < 15000 and r() < 0.2:
            gappend([rid, "保障性住房", iso[1 + gb(16) % 1825], str(100 * (12 + gb(8) % 37))])

    idx = 0
    while idx < n:
        # ---- one household: who is listed, and what they share -----------------------------------
        v = vpool[gb(11)]
        size, size_s, shape = shapes[gb(13)]
        urban = r() < v.urban
        if urban:
            income_s, income, grade, dibao, dibao_amt = econ_urban[gb(13)]
            land, land_s, reg_s = 0.0, "", v.reg_urban
        else:
            income_s, income, grade, dibao, dibao_amt = econ_rural[gb(13)]
            land, land_s = lands[size][gb(10)]
            reg_s = v.reg_rural
        yes, no = v.yes, v.no
        dibao_s = yes if dibao else no
        grade_s = v.grades[grade]
        if v.community:
            addr = v.addr_prefix + streets[gb(12) % n_streets] + flats[gb(11) % n_flats]
        else:
            addr = v.addr_prefix + v.groups[gb(8)] + house_numbers[gb(7)]
        town, vname, male_s, female_s, births = v.township, v.name, v.male, v.female, v.births
        # Head and children share surname and ID area code;
        # (sur, pinyin, area, its digit sum, ID counter base).
        head_sur, head_py = v.surnames[gb(12)]
        area, asum, ai = areas[gb(8)]
        as_male = (head_sur, head_py, area, asum, ai * span2 + 1)
        as_female = (head_sur, head_py, area, asum, ai * span2)
        head_contact = ("", "")
        if len(shape) > n - idx:
            shape = shape[: n - idx]

        # ---- its members, one row each --------------------------------------------------------------
        for k, (age, male, spouse) in enumerate(shape):
            if spouse:  # own surname; married in from elsewhere?
                sur, sur_py = surnames[gb(12)]
                p_area, p_asum, p_ai = areas[gb(8)] if r() < 0.3 else (area, asum, ai)
                key = p_ai * span2 + male
            else:
                sur, sur_py, p_area, p_asum, key = as_male if male else as_female
            gname, gpy = given[male][age][gb(11)]
            back = age_back[age] + gb(16) % 365
            key += back * 2  # (area, birth date, sex): numbered in turn
            c = id_seq[key]
            id_seq[key] = c + 1
            seq, ssum = seqs[male][(key + 37 * c) % 500]
            idno = f"{p_area}{compact[back]}{seq}{check[(p_asum + dsum[back] + ssum) % 11]}"

            if age < 16 and k:  # children are reached through the head
                phone, email = head_contact
            else:
                u = r()
                old = age >= 60
                if u < (0.72 if old else 0.85):  # a mobile; a fifth written with spaces, dashes, +86
                    phone = str(mobiles[gb(8)] + gb(27) % 100_000_000)
                    if u > (0.576 if old else 0.68):
                        phone = styled_mobile(phone)
                    email = email_for(sur_py, gpy, years[back]) if r() < (0.06 if old else 0.38) else ""
                elif u < (0.86 if old else 0.87):  # a landline only
                    phone = landline()
                    email = ""
                else:  # e-mail only, or nothing at all
                    phone = ""
                    email = email_for(sur_py, gpy, years[back]) if u < (0.88 if old else 0.96) else ""
                if not k:
                    head_contact = (phone, email)
            u = r()
            pref = preferred(u, phone, email, age) if u < 0.12 and age >= 16 else ""
            disabled = r() < p_disabled[age]

            rid = rid_format % (idx + 1)
            append(
                [
                    rid,
                    sur + gname,
                    male_s if male else female_s,
                    births[back],
                    idno,
                    reg_s,
                    town,
                    vname,
                    addr,
                    phone,
                    email,
                    pref,
                    size_s,
                    income_s,
                    grade_s,
                    dibao_s,
                    dibao_amt,
                    yes if disabled else no,
                    land_s,
                ]
            )

            # ---- past grants (none for rows that will be rejected: never imported) ---------------
            if (dibao or disabled or not k or age >= 80) and idx not in no_grants:
                if dibao and r() < 0.75:  # paid on the 5th of each month
                    for back in rng.sample(dibao_days, 1 + (r() < 0.3) + (r() < 0.1)):
                        gappend([rid, "低保" if r() < 0.6 else "最低生活保障", iso[back], dibao_amt])
                if disabled and r() < 0.45:
                    gappend([rid, "残疾人两项补贴", iso[1 + gb(16) % 1825], str(60 + 10 * (gb(8) % 10))])
                if age >= 80 and r() < 0.55:
                    gappend(
                        [
                            rid,
                            "养老服务补贴",
                            iso[1 + gb(16) % 1825],
                            str(100 * (1 + gb(8) % 3) * (1 if r() < 0.7 else 6)),
                        ]
                    )
                if not k:
                    household_grants(rid, land, urban, grade, income)
            idx += 1

    invalid_rows: dict[int, str] = {}
    reasons = (REASON_MISSING_ID, REASON_CHECK_DIGIT, REASON_INCOME, REASON_BIRTH_DATE)
    for j, k in enumerate(spoiled):
        row = rows[k]
        reason = reasons[j % 4]
        if reason is REASON_MISSING_ID:
            row[C_ID] = ""
        elif reason is REASON_CHECK_DIGIT:
            good = check.index(row[C_IDNO][17])
            row[C_IDNO] = row[C_IDNO][:17] + check[(good + rng.randint(1, 10)) % 11]
        elif reason is REASON_INCOME:
            amount = 1000 * rng.randint(2, 10)
            row[C_INCOME] = rng.choice(("约{}", "{}左右", "{}多", "{}元/年", "{}~{}")).format(
                amount, amount + 1000
            )
        else:
            y = int(row[C_IDNO][6:10])
            leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
            row[C_BIRTH] = f"{y}-" + rng.choice(
                ("02-30", "04-31", "06-31", "09-31", "11-31", "13-05", "02-30" if leap else "02-29")
            )
        invalid_rows[k + 2] = reason
    warning_rows: dict[int, str] = {}
    for j, k in enumerate(warned):
        row = rows[k]
        if row[C_EMAIL] and (not row[C_PHONE] or j % 2):
            row[C_EMAIL] = rng.choice(_BAD_EMAILS)
            warning_rows[k + 2] = WARN_EMAIL
        else:
            row[C_PHONE] = rng.choice(_BAD_PHONES)
            warning_rows[k + 2] = WARN_PHONE
    return SampleData(
        list(RESIDENTS_HEADER),
        rows,
        list(GRANTS_HEADER),
        grants,
        dict(sorted(invalid_rows.items())),
        dict(sorted(warning_rows.items())),
    )


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, encoding: str = "utf-8") -> None:
    """Write a CSV file as office software exports it: "utf-8", "utf-8-sig" (Excel) or "gbk"."""
    if encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "utf-8-sig", "gbk", "gb18030"):
        raise ValueError(f"unsupported encoding {encoding!r} (use utf-8, utf-8-sig or gbk)")
    with Path(path).open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_xlsx(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a one-sheet XLSX workbook (openpyxl write-only mode); every cell is text, empty
    strings stay empty."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sheet1")
    bold = Font(bold=True)
    head = []
    for title in header:
        cell = WriteOnlyCell(ws, value=title)
        cell.font = bold
        head.append(cell)
    ws.append(head)
    for row in rows:
        ws.append([c if c != "" else None for c in row])
    wb.save(Path(path))
