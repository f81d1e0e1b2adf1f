"""The web view's HTML: static pages, no scripts, every value escaped.

Elements carry ``data-*`` attributes naming what they show (``data-repo``, ``data-tag``,
``data-platform``, ``data-referrer``, ``data-pull`` ...), so tests read the page by structure.
"""

from __future__ import annotations

import html
from urllib.parse import quote

from fleetkit.registry.manifest import Descriptor
from fleetkit.registry.ui.model import ManifestView, RepoRow, TagRow, platform_text

__all__ = ["index_page", "repository_page", "manifest_page", "message_page", "human_size"]

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#26415f;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto;font-size:.8rem}
main{padding:1rem}h1{font-size:1.25rem;margin:.2rem 0 .8rem;word-break:break-all}
h2{font-size:1.02rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;background:#fff;width:100%}
td,th{border:1px solid #ccd;padding:.3rem .5rem;font-size:.82rem;text-align:left;vertical-align:top}
th{background:#e8ecf2}
code,pre{font-family:ui-monospace,monospace;font-size:.78rem}
code.digest{word-break:break-all}
.pull{display:block;background:#1f2630;color:#d7f0c2;padding:.3rem .5rem;border-radius:4px;
margin:.15rem 0;user-select:all;white-space:pre-wrap;word-break:break-all}
.plat{display:inline-block;background:#3a7a4a;color:#fff;border-radius:3px;padding:0 .3rem;
margin:0 .2rem .1rem 0;font-size:.75rem}
.art{display:inline-block;background:#7a4a8a;color:#fff;border-radius:3px;padding:0 .3rem;
font-size:.75rem}
pre.raw{background:#fff;border:1px solid #ccd;padding:.6rem;overflow:auto;max-height:30rem}
.note{color:#555;font-size:.85rem}
"""

_KINDS = {
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.oci.image.manifest.v1+json": "OCI manifest",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker manifest v2",
}


def human_size(n: int) -> str:
    """``1.5 MiB``-style size (binary units, one decimal above bytes)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(name: str, suffix: str = "") -> str:
    return "/ui/" + quote(name + suffix, safe="/:@")


def _page(title: str, body: str, viewer: str) -> str:
    who = f'<span class="who" data-viewer="{_e(viewer)}">{_e(viewer)}</span>' if viewer else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><a href="/ui">fleetkit registry</a>{who}</header>'
        f"<main>{body}</main></body></html>"
    )


def _size_cell(n: int) -> str:
    return f'<td data-size="{n}" title="{n} bytes">{_e(human_size(n))}</td>'


def _pull(command: str) -> str:
    return f'<code class="pull" data-pull="{_e(command)}">{_e(command)}</code>'


def _platforms(platforms: tuple[str, ...]) -> str:
    return "".join(f'<span class="plat" data-platform="{_e(p)}">{_e(p)}</span>' for p in platforms)


def index_page(
    rows: list[RepoRow], more: bool, host: str, viewer: str, may_list: bool = True
) -> str:
    """The front page: repositories the viewer may pull, with their tag counts."""
    if not may_list:
        body = (
            "<h1>Repositories</h1><p class=note data-denied=catalog>Listing repositories is not "
            "allowed for this account; open <code>/ui/NAME</code> for a repository you may pull."
            "</p>"
        )
        return _page("fleetkit registry", body, viewer)
    out = [f"<h1>Repositories on {_e(host)}</h1>"]
    if not rows:
        out.append('<p class="note" data-empty="repositories">No repositories yet.</p>')
    else:
        out.append("<table><tr><th>Repository</th><th>Tags</th></tr>")
        for r in rows:
            out.append(
                f'<tr data-repo="{_e(r.name)}"><td><a href="{_e(_href(r.name))}">{_e(r.name)}'
                f'</a></td><td data-tags="{r.tags}">{r.tags}</td></tr>'
            )
        out.append("</table>")
    if more and rows:
        out.append(
            f'<p><a data-next href="/ui?last={_e(quote(rows[-1].name, safe=""))}">next page</a>'
        )
    return _page("fleetkit registry", "".join(out), viewer)


def repository_page(name: str, rows: list[TagRow], host: str, viewer: str) -> str:
    """One repository: its tags with digest, kind, size, platforms, referrers, pull commands."""
    out = [f'<h1 data-repository="{_e(name)}">{_e(name)}</h1>']
    if not rows:
        out.append('<p class="note" data-empty="tags">No tags (only untagged manifests).</p>')
    else:
        out.append(
            "<table><tr><th>Tag</th><th>Digest</th><th>Kind</th><th>Size</th><th>Platforms</th>"
            "<th>Referrers</th><th>Pull</th></tr>"
        )
        for r in rows:
            ref = f"{host}/{name}:{r.tag}"
            out.append(
                f'<tr data-tag="{_e(r.tag)}"><td><a href="{_e(_href(name, ":" + r.tag))}">'
                f'{_e(r.tag)}</a></td><td><code class="digest" data-digest="{_e(r.digest)}">'
                f"{_e(r.digest)}</code></td><td>{_e(_KINDS.get(r.media_type, r.media_type))}</td>"
                f"{_size_cell(r.size_bytes)}<td>{_platforms(r.platforms)}</td>"
                f'<td data-referrers="{r.referrers}">{r.referrers}</td>'
                f"<td>{_pull(f'docker pull {ref}')}"
                f"{_pull(f'fleetkit pull {host}/{name}@{r.digest} oci:./image')}</td></tr>"
            )
        out.append("</table>")
    return _page(f"{name} - fleetkit registry", "".join(out), viewer)


def _descriptor_rows(items: tuple[Descriptor, ...], kind: str) -> str:
    rows = [
        f'<tr data-{kind}="{_e(d.digest)}"><td><code class="digest">{_e(d.digest)}</code></td>'
        f"<td>{_e(d.media_type)}</td>{_size_cell(d.size)}</tr>"
        for d in items
    ]
    return (
        "<table><tr><th>Digest</th><th>Media type</th><th>Size</th></tr>"
        + "".join(rows)
        + ("</table>")
    )


def manifest_page(v: ManifestView, host: str, viewer: str) -> str:
    """One manifest or index: layers or platforms, referrers, annotations, its JSON."""
    m = v.manifest
    out = [
        f'<h1><a href="{_e(_href(v.name))}">{_e(v.name)}</a>@'
        f'<code class="digest" data-manifest="{_e(v.digest)}">{_e(v.digest)}</code></h1>',
        "<table>",
        f'<tr><th>Kind</th><td data-media-type="{_e(v.media_type)}">'
        f"{_e(_KINDS.get(v.media_type, v.media_type))} (<code>{_e(v.media_type)}</code>)</td></tr>",
        f"<tr><th>Manifest size</th>{_size_cell(v.size_bytes)}</tr>",
        f"<tr><th>Total size</th>{_size_cell(v.total_bytes)}</tr>",
        f"<tr><th>Tags</th><td>{_e(', '.join(v.tags)) or '(none)'}</td></tr>",
        f"<tr><th>Platforms</th><td>{_platforms(v.platforms) or '(not named)'}</td></tr>",
    ]
    if m.artifact_type:
        out.append(f"<tr><th>Artifact type</th><td>{_e(m.artifact_type)}</td></tr>")
    if m.subject is not None:
        out.append(
            f'<tr><th>Subject</th><td><a data-subject="{_e(m.subject.digest)}" '
            f'href="{_e(_href(v.name, "@" + m.subject.digest))}"><code class="digest">'
            f"{_e(m.subject.digest)}</code></a></td></tr>"
        )
    out.append("</table><h2>Pull</h2>")
    for t in v.tags[:1]:
        out.append(_pull(f"docker pull {host}/{v.name}:{t}"))
    out.append(_pull(f"fleetkit pull {host}/{v.name}@{v.digest} oci:./image"))
    out.append(_pull(f"skopeo copy docker://{host}/{v.name}@{v.digest} oci:./image"))
    if m.is_index:
        out.append(
            "<h2>Manifests</h2><table><tr><th>Platform</th><th>Digest</th><th>Size</th></tr>"
        )
        for child, stored in v.children:
            plat = platform_text(child.platform)
            cell = f'<code class="digest">{_e(child.digest)}</code>'
            if stored:
                cell = f'<a href="{_e(_href(v.name, "@" + child.digest))}">{cell}</a>'
            out.append(
                f'<tr data-child="{_e(child.digest)}"><td>'
                f"{_platforms((plat,)) if plat else '(none)'}</td><td>{cell}</td>"
                f"{_size_cell(child.size)}</tr>"
            )
        out.append("</table>")
    else:
        if m.config is not None:
            out.append("<h2>Config</h2>" + _descriptor_rows((m.config,), "config"))
        out.append(f"<h2>Layers ({len(m.layers)})</h2>" + _descriptor_rows(m.layers, "layer"))
    out.append(f"<h2>Referrers ({len(v.referrers)})</h2>")
    if not v.referrers:
        out.append('<p class="note">No signatures, SBOMs or attestations refer to this.</p>')
    else:
        out.append(
            "<table><tr><th>Artifact type</th><th>Digest</th><th>Size</th><th>Annotations</th></tr>"
        )
        for r in v.referrers:
            notes = "<br>".join(f"{_e(k)}: {_e(val)}" for k, val in r.annotations)
            out.append(
                f'<tr data-referrer="{_e(r.artifact_type)}"><td><span class="art">'
                f"{_e(r.artifact_type or '(none)')}</span></td><td>"
                f'<a href="{_e(_href(v.name, "@" + r.digest))}"><code class="digest">'
                f"{_e(r.digest)}</code></a></td>{_size_cell(r.size_bytes)}<td>{notes}</td></tr>"
            )
        out.append("</table>")
    if m.annotations:
        out.append("<h2>Annotations</h2><table>")
        for k, val in sorted(m.annotations.items()):
            out.append(f'<tr data-annotation="{_e(k)}"><th>{_e(k)}</th><td>{_e(val)}</td></tr>')
        out.append("</table>")
    out.append(f'<h2>Manifest</h2><pre class="raw" data-raw>{_e(v.raw)}</pre>')
    return _page(f"{v.name}@{v.digest[:19]} - fleetkit registry", "".join(out), viewer)


def message_page(title: str, text: str, viewer: str = "") -> str:
    """A short page for not-found and login answers."""
    return _page(title, f"<h1>{_e(title)}</h1><p class=note>{_e(text)}</p>", viewer)
