"""Generate tests/assets/pii_cases.jsonl: labelled PII positives and hard negatives (seeded, check digits computed).

Labels come from construction, never from the detector under test.
"""
import json
import random
import sys

R = random.Random(20240611)

# ---------------------------------------------------------------- check-digit helpers (independent of tuneforge)
W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_check(s17):
    return "10X98765432"[sum(int(a) * b for a, b in zip(s17, W)) % 11]


def luhn_check_digit(body):
    total = 0
    for i, d in enumerate(reversed(body)):
        n = int(d) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str((10 - total % 10) % 10)


def iban_num(s):
    return int("".join(str(int(c, 36)) for c in s))


def make_iban(cc, bban):
    check = 98 - iban_num(bban + cc + "00") % 97
    return f"{cc}{check:02d}{bban}"


def group4(s):
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def digits(n):
    return "".join(R.choice("0123456789") for _ in range(n))


def letters(n):
    return "".join(R.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(n))


# ---------------------------------------------------------------- value generators
REGIONS = ["110101", "110105", "310104", "310115", "440305", "440106", "510107", "330106", "320102", "420106",
           "610113", "500103", "120101", "370202", "350203", "430104", "210102", "230103", "530102", "450102"]


def cn_id(valid=True, want_x=None):
    while True:
        y = R.randint(1950, 2010)
        m = R.randint(1, 12)
        d = R.randint(1, 28)
        s17 = f"{R.choice(REGIONS)}{y:04d}{m:02d}{d:02d}{R.randint(0, 999):03d}"
        c = id_check(s17)
        if want_x is not None and (c == "X") != want_x:
            continue
        if valid:
            return s17 + c
        wrong = R.choice([x for x in "0123456789X" if x != c])
        return s17 + wrong


CARD_BRANDS = [  # (prefix generator, length, grouping)
    (lambda: "4" + digits(5), 16, "4444"),
    (lambda: str(R.randint(51, 55)) + digits(4), 16, "4444"),
    (lambda: str(R.randint(2221, 2720)) + digits(2), 16, "4444"),
    (lambda: R.choice(["34", "37"]) + digits(4), 15, "465"),
    (lambda: "62" + digits(4), 16, "4444"),
    (lambda: "62" + digits(4), 19, "44443"),
    (lambda: "6011" + digits(2), 16, "4444"),
    (lambda: str(R.randint(3528, 3589)) + digits(2), 16, "4444"),
    (lambda: "36" + digits(4), 14, "464"),
]


def fmt_groups(num, groups, sep):
    out, i = [], 0
    for g in groups:
        out.append(num[i:i + int(g)])
        i += int(g)
    return sep.join(out)


def card(valid=True, brand=None):
    pre, n, groups = brand or R.choice(CARD_BRANDS)
    body = pre() + digits(n - 7)
    c = luhn_check_digit(body)
    if not valid:
        c = str((int(c) + R.randint(1, 9)) % 10)
    num = body + c
    sep = R.choice(["", " ", "-", " "])
    return num if not sep else fmt_groups(num, groups, sep)


IBAN_SPECS = {  # country: BBAN shape (L = letter, D = digit)
    "DE": "D" * 18, "GB": "LLLL" + "D" * 14, "FR": "D" * 23, "ES": "D" * 20, "IT": "L" + "D" * 22,
    "NL": "LLLL" + "D" * 10, "BE": "D" * 12, "CH": "D" * 17, "AT": "D" * 16, "PL": "D" * 24, "SE": "D" * 20,
    "IE": "LLLL" + "D" * 14, "PT": "D" * 21, "NO": "D" * 11, "DK": "D" * 14, "FI": "D" * 14,
}


def iban(valid=True, spaced=None):
    cc = R.choice(sorted(IBAN_SPECS))
    bban = "".join(R.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") if ch == "L" else R.choice("0123456789")
                   for ch in IBAN_SPECS[cc])
    s = make_iban(cc, bban)
    if not valid:  # change the check digits: mod-97 fails
        s = s[:2] + f"{(int(s[2:4]) + R.randint(1, 40)) % 100:02d}" + s[4:]
    spaced = R.random() < 0.5 if spaced is None else spaced
    return group4(s) if spaced else s


def ipv4():
    kind = R.random()
    if kind < 0.3:
        return f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if kind < 0.45:
        return f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    return f"{R.randint(11, 223)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"


IPV6 = ["2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a", "2001:0db8:0000:0000:0000:ff00:0042:8329",
        "2408:8207:2460:1a30::1", "240e:3b0:1c2d:5e00:8d4:2f1a:bc3:91e2", "2001:db8::ff00:42:8329",
        "fd12:3456:789a:1::1", "::ffff:192.0.2.128"]

MOBILE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "157",
                   "158", "159", "166", "170", "176", "177", "180", "181", "182", "185", "186", "187", "188", "189",
                   "191", "198", "199", "147"]


def cn_mobile():
    num = R.choice(MOBILE_PREFIXES) + digits(8)
    style = R.random()
    if style < 0.45:
        return num
    if style < 0.6:
        return f"{num[:3]}-{num[3:7]}-{num[7:]}"
    if style < 0.72:
        return f"{num[:3]} {num[3:7]} {num[7:]}"
    if style < 0.84:
        return "+86 " + f"{num[:3]} {num[3:7]} {num[7:]}"
    if style < 0.92:
        return "+86" + num
    return "0086-" + num


def intl_phone():
    return R.choice([
        lambda: f"+44 20 {R.randint(7000, 7999)} {digits(4)}",
        lambda: f"+44 (0)20 {R.randint(7000, 7999)} {digits(4)}",
        lambda: f"+1 ({R.randint(201, 989)}) {R.randint(200, 999)}-{digits(4)}",
        lambda: f"+1-{R.randint(201, 989)}-{R.randint(200, 999)}-{digits(4)}",
        lambda: f"+49 30 {R.randint(10000000, 99999999)}",
        lambda: f"+33 1 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
        lambda: f"+81 3-{digits(4)}-{digits(4)}",
        lambda: f"+61 2 {digits(4)} {digits(4)}",
        lambda: f"+852 {R.randint(2000, 9999)} {digits(4)}",
        lambda: f"+65 {R.randint(6000, 9999)} {digits(4)}",
        lambda: f"+91 {R.randint(70000, 99999)} {digits(5)}",
        lambda: f"+7 495 {digits(3)}-{digits(2)}-{digits(2)}",
    ])()


def national_phone():
    return R.choice([
        lambda: f"({R.randint(201, 989)}) {R.randint(200, 999)}-{digits(4)}",
        lambda: f"{R.randint(201, 989)}-{R.randint(200, 999)}-{digits(4)}",
        lambda: f"{R.randint(201, 989)}.{R.randint(200, 999)}.{digits(4)}",
        lambda: f"1-800-{R.randint(200, 999)}-{digits(4)}",
        lambda: f"010-{R.randint(2, 8)}{digits(7)}",
        lambda: f"0755-{R.randint(2, 8)}{digits(7)}",
        lambda: f"(021) {R.randint(2, 8)}{digits(7)}",
        lambda: f"0571-{R.randint(2, 8)}{digits(6)}",
    ])()


def phone():
    r = R.random()
    return cn_mobile() if r < 0.5 else intl_phone() if r < 0.75 else national_phone()


FIRST = ["john", "mary", "alice", "bob", "li.wei", "zhang.san", "wang_fang", "chen.jie", "emma", "liam", "olivia",
         "noah", "sophia", "lucas", "yuki", "hans", "marie", "ahmed", "liu.yang", "zhao.min"]
DOMAINS = ["example.com", "mail.example.org", "163.com", "qq.com", "gmail.com", "outlook.com", "company.com.cn",
           "uni-heidelberg.de", "example.co.uk", "sina.cn", "tuneforge.dev", "fudan.edu.cn", "hotmail.fr"]


def email():
    r = R.random()
    if r < 0.15:
        local = digits(R.randint(6, 10)).lstrip("0") or "123456"
        return f"{local}@qq.com"
    local = R.choice(FIRST)
    if r < 0.35:
        local += str(R.randint(1, 2024))
    elif r < 0.45:
        local += "+news"
    elif r < 0.5:
        local = local.capitalize()
    return f"{local}@{R.choice(DOMAINS)}"


URLS = ["https://www.example.com", "http://example.org/path/to/page.html", "https://github.com/{u}/repo/issues/{n}",
        "www.baidu.com", "https://zh.wikipedia.org/wiki/Python", "http://{ip}:8080/admin",
        "https://example.com/search?q=test&lang=en", "https://shop.example.cn/item/{n}#reviews",
        "ftp://files.example.net/pub/data.zip", "https://docs.python.org/3/library/re.html",
        "www.example.co.uk/about", "https://t.co/{u}", "HTTPS://WWW.EXAMPLE.COM/Index", "http://blog.example.io/{n}",
        "https://weibo.com/u/{n}", "https://mp.weixin.qq.com/s/{u}", "https://www.zhihu.com/question/{n}",
        "https://en.wikipedia.org/wiki/Foo_(bar)", "https://drive.example.com/file/d/{u}/view?usp=sharing"]


def url():
    return R.choice(URLS).format(u=R.choice(["abc123", "xYz9", "tuneforge", "q8Kd2", "user42"]),
                                 n=R.randint(10, 999999), ip=ipv4())


GEN = {"EMAIL": email, "URL": url, "IBAN": iban, "CN_ID": cn_id, "CARD": card,
       "IP": lambda: ipv4() if R.random() < 0.7 else R.choice(IPV6), "PHONE": phone}

TEMPLATES = {
    "EMAIL": ["Please email {v} for details.", "Contact: {v}", "我的邮箱是{v}，有问题随时联系。", "请把简历发到 {v} 。",
              "Send the invoice to <{v}>.", "(email: {v})", "发送至{v}即可", "Reach me at {v}.",
              "cc {v}; thanks", "邮箱：{v}"],
    "URL": ["See {v} for more.", "详情请访问{v}。", "链接：{v}", "(source: {v})", "Visit {v}, then sign in.",
            "download it from {v}", "原文地址 {v} 已失效", "Go to {v}!"],
    "IBAN": ["Please transfer the deposit to IBAN {v}.", "收款账户 IBAN：{v}", "Bankverbindung: {v}",
             "IBAN {v} (main account)", "Wire the money to {v} by Friday.", "账户 {v}，户名 Hans Müller"],
    "CN_ID": ["身份证号：{v}", "我的身份证号码是{v}，请核对。", "ID number {v} was submitted.", "公民身份号码 {v}",
              "证件号{v}已登记", "Passenger ID: {v}.", "申请人身份证{v}，联系人本人"],
    "CARD": ["Card number: {v}", "信用卡号 {v}，有效期 12/27", "Charge it to {v} please.", "卡号：{v}",
             "My card {v} was declined.", "银行卡{v}已绑定", "pay with {v} (exp 09/26)"],
    "IP": ["Login from {v} at 10:32", "服务器地址 {v}", "The request came from IP {v}.", "ping {v}",
           "客户端IP：{v}，已拦截", "ssh root@{v}", "allow {v} in the firewall", "来自{v}的访问"],
    "PHONE": ["请联系我 {v}", "Call me at {v}.", "电话：{v}", "Tel {v}, ask for Anna", "手机号{v}，微信同号",
              "my number is {v}", "联系电话{v}（工作日）", "Phone: {v} (mobile)"],
}

NOISE = ["", "", "Hi, ", "您好，", "Note: ", "备注："]


def positives(per_type=32):
    rows = []
    for kind, gen in GEN.items():
        for i in range(per_type):
            if kind == "CN_ID":
                v = cn_id(want_x=i % 5 == 0)  # about a fifth end in X
            elif kind == "CARD":
                v = card(brand=CARD_BRANDS[i % len(CARD_BRANDS)])
            else:
                v = gen()
            text = R.choice(NOISE) + R.choice(TEMPLATES[kind]).format(v=v)
            rows.append({"text": text, "pii": [{"type": kind, "value": v}]})
    multi = [
        ("联系人：张三，电话{a}，邮箱{b}", "PHONE", "EMAIL"),
        ("Name: Anna Smith, phone {a}, email {b}", "PHONE", "EMAIL"),
        ("身份证{a}，银行卡{b}", "CN_ID", "CARD"),
        ("User {a} logged in from {b}", "EMAIL", "IP"),
        ("Pay to {a} or card {b}", "IBAN", "CARD"),
        ("官网 {a} 客服电话 {b}", "URL", "PHONE"),
        ("{a} / {b}", "PHONE", "PHONE"),
        ("报名信息：身份证号{a}；手机{b}。", "CN_ID", "PHONE"),
    ]
    for i in range(32):
        tpl, ka, kb = multi[i % len(multi)]
        a = GEN[ka]()
        b = GEN[kb]()
        if ka == kb == "PHONE":
            a, b = cn_mobile(), cn_mobile()
        rows.append({"text": tpl.format(a=a, b=b), "pii": [{"type": ka, "value": a}, {"type": kb, "value": b}]})
    return rows


def neg(text):
    return {"text": text, "pii": []}


def negatives():
    rows = []
    for _ in range(24):  # Luhn-invalid cards with real prefixes
        rows.append(neg(R.choice(["Card number {v} was rejected as invalid.", "卡号 {v} 校验失败", "test value {v}",
                                  "参考号 {v}"]).format(v=card(valid=False))))
    for _ in range(8):  # Luhn-valid, but no card network uses these prefixes
        body = R.choice("1789") + digits(14)
        rows.append(neg(f"Tracking number {body + luhn_check_digit(body)} shipped."))
    for _ in range(24):  # ID numbers with a wrong check digit
        rows.append(neg(R.choice(["身份证号 {v} 校验位错误", "ID {v} is not valid", "号码{v}有误，请重填"])
                        .format(v=cn_id(valid=False))))
    for _ in range(6):  # impossible birth dates (month 13, day 32)
        s17 = f"{R.choice(REGIONS)}1990{R.choice(['13', '00'])}{R.choice(['15', '32'])}{digits(3)}"
        rows.append(neg(f"编号 {s17 + id_check(s17)} 不是身份证"))
    for _ in range(14):  # IBAN with broken check digits
        rows.append(neg(R.choice(["IBAN {v} (typo, bounced)", "账户 {v} 校验失败"]).format(v=iban(valid=False))))
    rows += [neg(t) for t in [
        # IBAN-like codes
        "Model XK20-5 is discontinued.", "ISO 8601 dates", "CH93 0076 2011 is only a prefix", "FR14 2004 policy",
        "Route DE22 closed", "part number GB12ABCD", "Flight LH2024 departs at 10:45", "Room NL18, floor 3",
        # orders, tracking, codes
        "订单号 202310051234567890 已发货", "Order #100234567 shipped", "运单号 SF1234567890123", "快递单号 773012345678901",
        "Invoice INV-2023-000123", "工单编号 WO-2023-10-05-0042", "批次 20231005001", "序列号 SN20231005A7", "Ticket 88-1234-99",
        "ISBN 978-3-16-148410-0", "ISBN 9787115428028", "EAN 6901234567892", "GB/T 7714-2015 参考文献格式",
        "ISO 9001:2015 certified", "UUID 123e4567-e89b-12d3-a456-426614174000", "MAC 00:1A:2B:3C:4D:5E",
        "commit 3a7bd3e2360a3d29eea436fcfb7e44c735d117c4", "SKU 4006381333931", "barcode 012345678905",
        # dates and times
        "2023-10-05", "2023/10/05 12:30:45", "on 05.10.2023 we met", "2023年10月5日 星期四", "meet at 12:30",
        "timestamp 1696502400", "ts=1696502400123 ms", "20231005T123045Z", "10/05/2023 - 10/12/2023",
        "1990-2000 was a decade", "2008年8月8日晚8点", "Q3 2023-Q4 2024", "12:30:45.123", "UTC+08:00",
        "from 09:00 to 18:00, Mon-Fri", "2023-10-05T12:30:45+08:00",
        # prices, decimals, big numbers
        "$1,299.99 only", "¥12999 包邮", "pi is 3.1415926535", "world population 8,045,311,447",
        "人口 1411778724 人", "0.000123 seconds", "GDP 121.02万亿元", "总额 15000000000 元", "成交量 13800000000 股",
        "revenue +12.5% year on year", "up +5% today", "增长 +150% 以上", "price dropped -138 points",
        "1,380,000,000 people", "€ 2.499,00", "score 98.76543210", "共计 13812 人参加", "估值 1,000,000,000 美元",
        "balance 4111111111.11", "number 1.3812345678e10", "ratio 0.75:0.25", "99.9% uptime",
        # version strings and dotted numbers
        "version 2.10.3.1", "v1.2.3.4", "升级到 2.10.3.1 版本", "10.0.0.256", "1.2.3.4.5", "Python 3.11.4",
        "build 10.0.19045.3570", "Chrome 118.0.5993.88", "release 4.2.1.0 notes", "固件版本 3.0.12.7", "see section 1.2.3.4",
        "第 2.1.3.4 条", "192.168.1 is incomplete", "300.1.2.3", "999.999.999.999", "1.2.3", "lib 0.9.8.7",
        "tensorflow==2.13.0", "node v18.17.1", "semver 1.0.0-rc.1", "IP range 256.0.0.1 is invalid",
        # math
        "3+4=7", "1234+5678=6912", "x^2 + 2x + 1", "(a+b)*(c-d)", "12345678 * 87654321 = 1082152022374638",
        "2+2=4", "f(x) = 3x - 12", "10-3-2=5", "1:2:3 ratio", "比分 3-2",
        "pages 123-456", "score 21-19, 21-17", "matrix [[1, 2], [3, 4]]", "(1)(2)(3)",
        # phone-like non-phones
        "12345678901 is not a phone", "10086 客服", "拨打 95588 查询", "13812345678901 是流水号", "138123456789 太长",
        "编号 1381234567", "邮编 100080", "尾号 5678", "验证码 384756", "PIN 1234", "QQ群 123456789",
        "学号 2021012345", "工号 00123456", "1234567", "call extension 4567", "room 555", "12012345678 无效号段",
        "14012345678 无效", "+86", "+1", "+12 34", "+123", "11111111111", "1-2-3-4-5", "555-12",
        # e-mail lookalikes
        "user at example dot com", "report@2x.png", "icon@3x.jpg", "@username said hi", "foo@bar", "name@localhost",
        "lodash@4.17.21", "email me: john(at)example(dot)com", "a@b", "user@", "zhang.san[at]163.com",
        "The meeting is @ 3pm", "@2x.png", "logo@2x.webp", "npm i react@18.2.0", "git@ is a prefix",
        "list@@example.com", "ping @channel", "price @ $5 each",
        # URL lookalikes
        "e.g. this one", "i.e. that", "etc.", "file.txt", "http://", "https:// is the scheme", "www.", "Node.js",
        "Mr. Smith arrived.", "README.md", "config.yaml", "a.b.c", "U.S.A.", "www is short for world wide web",
        "see ch. 3, p. 12",
        # Chinese text with long numbers
        "2023年全国GDP为1260582亿元", "第19届亚运会在杭州举行", "本次抽奖号码为 7384920165", "全市常住人口 21893095 人",
        "共卖出 1381234 件", "会员卡积分 1380000", "高铁 G1234 次列车", "房间号 1808", "文号 国发〔2023〕15号",
        "年产值 12345678901 元", "浏览量 13800138000 次", "第 1381234567 位访客", "身份证后四位 4578",
        "银行卡尾号 1111", "座机分机 8021", "股票代码 600519", "快递柜取件码 12-3-4567",
    ]]
    return rows


def main(path):
    pos, negs = positives(), negatives()
    with open(path, "w", encoding="utf-8") as fh:
        for row in pos + negs:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    n_types = {}
    for r in pos:
        for p in r["pii"]:
            n_types[p["type"]] = n_types.get(p["type"], 0) + 1
    print(f"{len(pos)} positive rows, {len(negs)} negative rows; items per type: {n_types}")


if __name__ == "__main__":
    main(sys.argv[1])
