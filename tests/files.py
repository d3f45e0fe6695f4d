"""Small real files of each format, written byte by byte (no PDF or Word library needed)."""

from __future__ import annotations

import io
import zipfile
import zlib
from xml.sax.saxutils import escape


def pdf(pages: list[str], shared: bytes | None = None, to_unicode: bytes | None = None) -> bytes:
    """A PDF with one line of Helvetica text per page ('' makes a page with no text layer).
    ``shared``: every page's content is instead these bytes, deflated (a decompression bomb).
    ``to_unicode``: the font's ToUnicode CMap, which says what text each glyph code stands for."""
    objects: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b"0 0 m 10 10 l S"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        if shared is not None:
            content = zlib.compress(shared, 9)
            objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream")
        else:
            objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    if to_unicode is None:
        objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    else:
        objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode %d 0 R >>" % (font + 1))
        objects.append(b"<< /Length %d >>\nstream\n" % len(to_unicode) + to_unicode + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx(paragraphs: list[str], padding: int = 0) -> bytes:
    """A minimal .docx; ``padding`` adds that many spaces of XML whitespace (a zip bomb's body)."""
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    xml = f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}"><w:body>{body}' + " " * padding
    xml += "</w:body></w:document>"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        zf.writestr("word/document.xml", xml)
    return out.getvalue()


def html(title: str, paragraphs: list[str], charset: str = "utf-8") -> bytes:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    page = (
        f'<html><head><meta charset="{charset}"><title>{escape(title)}</title>'
        "<style>p { color: red }</style><script>var secret = 'SCRIPTWORD';</script></head>"
        f"<body><nav>Menu</nav>{body}<script>track('SCRIPTWORD')</script></body></html>"
    )
    return page.encode(charset)
