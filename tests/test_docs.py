"""The documentation holds together: every relative link resolves, the README stays short.

Links are read from README.md, CHANGELOG.md and docs/*.md outside code: a link
to a file must name an existing file of the repository, and a ``#anchor`` must
be the slug of a heading of the linked Markdown file, made as GitHub makes it
(github-slugger: lower case, punctuation dropped, each space a hyphen, repeated
slugs numbered ``-1``, ``-2``, ...).
"""
import glob
import os.path as osp
import re
from typing import Dict, Iterator, List, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
README_MAX_LINES = 250

FENCE = re.compile(r'^ {0,3}(```|~~~)')
INLINE_CODE = re.compile(r'(`+)(?:(?!\1).)+?\1', re.DOTALL)
#: ``](target)`` or ``](target "title")``: the bracketed text may span lines.
INLINE_LINK = re.compile(r'\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')
REFERENCE_LINK = re.compile(r'^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$', re.MULTILINE)
HTML_LINK = re.compile(r'\b(?:href|src)\s*=\s*"([^"]*)"')
HEADING = re.compile(r'^ {0,3}#{1,6}[ \t]+(.*?)[ \t]*(?:#+[ \t]*)?$')
EXTERNAL = re.compile(r'^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)')


def documentation_files() -> List[str]:
    """The Markdown files whose links are checked.

    Returns:
        Absolute paths: README.md, CHANGELOG.md and every docs/*.md.
    """
    files = [osp.join(REPO, 'README.md'), osp.join(REPO, 'CHANGELOG.md')]
    return files + sorted(glob.glob(osp.join(REPO, 'docs', '*.md')))


def prose_lines(text: str) -> Iterator[str]:
    """Yield the lines of Markdown outside fenced code blocks (fences blanked).

    Args:
        text: Markdown source.

    Yields:
        Each line, or an empty string for a line of a fenced block.
    """
    fence = None
    for line in text.split('\n'):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            yield ''
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            yield ''
        else:
            yield line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading, before duplicates are numbered.

    Args:
        heading: The heading's Markdown text (without the leading ``#``).

    Returns:
        The slug: the rendered text in lower case, without punctuation, each
        space a hyphen.
    """
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link counts by its text
    text = re.sub(r'<[^>]+>', '', text)
    return re.sub(r'[^\w\- ]', '', text.lower()).replace(' ', '-')


def heading_anchors(text: str) -> List[str]:
    """Every anchor of a Markdown file's headings, duplicates numbered as GitHub does.

    Args:
        text: Markdown source.

    Returns:
        The anchors in file order.
    """
    anchors: List[str] = []
    seen: Dict[str, int] = {}
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(1))
        anchor = slug
        while anchor in seen:
            seen[slug] += 1
            anchor = f'{slug}-{seen[slug]}'
        seen.setdefault(anchor, 0)
        anchors.append(anchor)
    return anchors


def relative_links(text: str) -> List[Tuple[int, str]]:
    """The relative links of a Markdown file, outside code.

    Args:
        text: Markdown source.

    Returns:
        ``(line number, target)`` pairs; targets with a scheme (``https:``,
        ``mailto:``) are left out.
    """
    prose = '\n'.join(prose_lines(text))
    prose = INLINE_CODE.sub(lambda m: re.sub(r'[^\n]', ' ', m.group(0)), prose)
    links = []
    for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK):
        for match in pattern.finditer(prose):
            target = match.group(1)
            if not EXTERNAL.match(target):
                links.append((prose.count('\n', 0, match.start(1)) + 1, target))
    return sorted(links)


def broken_links(path: str, root: str = REPO) -> List[str]:
    """Check every relative link of one Markdown file.

    Args:
        path: The Markdown file.
        root: The repository, which no link may leave.

    Returns:
        One line per broken link, naming the file, the line and why.
    """
    with open(path, encoding='utf-8') as f:
        text = f.read()
    problems = []
    for line, target in relative_links(text):
        where = f'{osp.relpath(path, root)}:{line}: {target!r}'
        file_part, _, anchor = target.partition('#')
        linked = osp.normpath(osp.join(osp.dirname(path), file_part)) if file_part else path
        if not file_part and not anchor:
            problems.append(f'{where}: empty link')
        elif osp.relpath(linked, root).startswith('..'):
            problems.append(f'{where}: outside the repository')
        elif not osp.exists(linked):
            problems.append(f'{where}: no such file')
        elif anchor:
            if not linked.endswith('.md'):
                problems.append(f'{where}: an anchor into a file that is not Markdown')
            else:
                with open(linked, encoding='utf-8') as f:
                    anchors = heading_anchors(f.read())
                if anchor not in anchors:
                    problems.append(f'{where}: no heading with this anchor')
    return problems


def test_github_slugs():
    """Slugs follow GitHub's rule (github-slugger), duplicates included."""
    assert github_slug('Checkpoints and torch >= 2.6') == 'checkpoints-and-torch--26'
    assert github_slug('Large runs: broken files, interruptions, several processes') == \
        'large-runs-broken-files-interruptions-several-processes'
    assert github_slug('In a notebook: `SaliencyExplainer`') == 'in-a-notebook-saliencyexplainer'
    assert github_slug('What a box\'s map is') == 'what-a-boxs-map-is'
    assert github_slug('The `--explain_gt` [option](cli.md)') == 'the---explain_gt-option'
    assert heading_anchors('# A\n## A\n```\n# A\n```\n### A\n') == ['a', 'a-1', 'a-2']


def test_link_checker_finds_broken_links(tmp_path):
    """The checker reports a missing file and a missing anchor, and ignores code and URLs."""
    (tmp_path / 'other.md').write_text('# Other page\n\n## Its section\n')
    page = tmp_path / 'page.md'
    page.write_text('\n'.join([
        '# Page',
        '[fine](other.md#its-section) [also fine](#page) [web](https://example.com/x.md)',
        '`[in code](missing.md)`',
        '```',
        '[in a block](missing.md)',
        '```',
        '[no file](missing.md) and [no heading](other.md#nowhere)',
        '![a picture whose text',
        'spans lines](missing.png)',
    ]))
    problems = broken_links(str(page), root=str(tmp_path))
    assert len(problems) == 3, problems
    assert "'missing.md': no such file" in problems[0]
    assert "'other.md#nowhere': no heading with this anchor" in problems[1]
    assert "'missing.png': no such file" in problems[2]


def test_documentation_links_resolve():
    """Every relative link of README.md, CHANGELOG.md and docs/*.md resolves."""
    files = documentation_files()
    assert len(files) > 2 and all(osp.isfile(path) for path in files)
    problems = [problem for path in files for problem in broken_links(path)]
    assert not problems, 'broken links:\n' + '\n'.join(problems)


def test_every_docs_page_is_linked():
    """Every docs/*.md page is reachable from the README or another page."""
    linked = set()
    for path in documentation_files():
        with open(path, encoding='utf-8') as f:
            for _, target in relative_links(f.read()):
                file_part = target.partition('#')[0]
                if file_part:
                    linked.add(osp.normpath(osp.join(osp.dirname(path), file_part)))
    pages = documentation_files()[2:]
    orphans = [osp.relpath(page, REPO) for page in pages if page not in linked]
    assert not orphans, f'pages no other page links to: {orphans}'


def test_readme_is_short():
    """The README is an overview of at most 250 lines; the rest lives in docs/."""
    with open(osp.join(REPO, 'README.md'), encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert len(lines) <= README_MAX_LINES, f'README.md has {len(lines)} lines'
    assert any(line.strip().startswith('make test') for line in lines), \
        "the README's test command (CI runs it) is `make test`"
