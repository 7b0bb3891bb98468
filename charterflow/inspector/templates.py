"""The inspector's Jinja2 templates (kept in Python so they ship with the package as is)."""

from __future__ import annotations

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · charterflow sandbox inspector</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f4f5f7}
header{background:#0c4b33;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#fff;text-decoration:none;opacity:.85} header a.on{opacity:1;font-weight:600;border-bottom:2px solid #fff}
header .brand{font-weight:700;margin-right:1rem}
main{display:flex;gap:1rem;padding:1rem 1.2rem}
nav.side{min-width:14rem;max-width:16rem;background:#fff;border-radius:6px;padding:.6rem;align-self:flex-start}
nav.side a{display:block;padding:.2rem .4rem;border-radius:4px;color:#333;text-decoration:none}
nav.side a.on{background:#e3efe9;font-weight:600} nav.side h3{font-size:.8rem;text-transform:uppercase;color:#777;margin:.8rem 0 .3rem}
section.feed{flex:1;min-width:0}
.msg{background:#fff;border-radius:6px;padding:.6rem .8rem;margin-bottom:.6rem;box-shadow:0 1px 2px #0001}
.meta{color:#666;font-size:.8rem}.who{font-weight:600;color:#0c4b33}
.content{white-space:pre-wrap;margin:.3rem 0}
.buttons{display:flex;flex-wrap:wrap;gap:.4rem;margin-top:.3rem}
.buttons form{margin:0}
button{font:inherit;padding:.25rem .7rem;border-radius:4px;border:1px solid #888;background:#fafafa;cursor:pointer}
button.primary,button.style-1,button.style-3,button.primary-slack{background:#0c7a50;color:#fff;border-color:#0c7a50}
button.style-4,button.danger{background:#b3261e;color:#fff;border-color:#b3261e}
button:disabled{opacity:.45;cursor:not-allowed}
.thread{margin-left:1.4rem;border-left:3px solid #cfe3da;padding-left:.8rem}
.note{background:#fff7d6;border:1px solid #e8d27a;padding:.5rem .8rem;border-radius:6px;margin-bottom:.8rem}
.asbar{background:#fff;border-radius:6px;padding:.5rem .8rem;margin-bottom:.8rem}
table{border-collapse:collapse;background:#fff}td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:left}
.tag{display:inline-block;font-size:.75rem;background:#e3efe9;border-radius:3px;padding:0 .35rem;margin-right:.2rem}
.poll{border:1px solid #ddd;border-radius:6px;padding:.4rem .6rem;margin-top:.4rem}
.empty{color:#777;font-style:italic}
code{font-size:.85em}
</style></head><body>
<header><span class="brand">charterflow · sandbox inspector</span>
<a href="/" class="{{ 'on' if page == 'home' }}">Overview</a>
{% for name, label in platforms %}<a href="/{{ name }}" class="{{ 'on' if page == name }}">{{ label }}</a>{% endfor %}
{% if prefect_ui %}<a href="{{ prefect_ui }}" target="_blank">Prefect UI ↗</a>{% endif %}
<a href="{{ gateway_url }}/apply" target="_blank">Apply form ↗</a>
</header>
{% if note %}<div style="padding:0 1.2rem"><p class="note" id="note">{{ note }}</p></div>{% endif %}
<main>{% block body %}{% endblock %}</main>
</body></html>
"""

HOME = """{% extends "base.html" %}{% block body %}
<section class="feed">
<h2>The sandboxes</h2>
<p>Read-only views of the platforms `charterflow up` runs in sandboxes, as a person sees them. The
buttons act as any seeded person, through the same signed requests the platforms send.</p>
<table><tr><th>Platform</th><th>Runs as</th><th>Base URL</th></tr>
{% for row in sandboxes %}<tr><td>{{ row.label }}</td><td>{{ row.mode }}</td><td><code>{{ row.url or '-' }}</code></td></tr>{% endfor %}
</table>
{% if problems %}<p class="note">{{ problems|join('; ') }}</p>{% endif %}
{% for name, links in places %}<h2>{{ name|capitalize }} (a plugin platform)</h2>
<ul>{% for label, url in links %}<li><a href="{{ url }}" rel="noopener">{{ label }}</a></li>{% endfor %}</ul>
{% endfor %}
<h2>The working group (as seeded)</h2>
<table><tr><th>Handle</th><th>Name</th><th>Home</th><th>WG role</th><th>Forum</th><th>Discord</th></tr>
{% for p in wg %}<tr><td>{{ p.handle }}</td><td>{{ p.name }}</td><td>{{ p.home_platform }}</td>
<td>{{ roles.get(p.handle, '') }}</td><td>{{ p.forum.username if p.forum else '-' }}</td>
<td>{{ p.discord.username if p.discord else '-' }}</td></tr>{% endfor %}</table>
<h2>Staff</h2>
<table><tr><th>Platform</th><th>Admins</th><th>Moderators</th></tr>
{% for name, admins, mods in staff %}<tr><td>{{ name }}</td><td>{{ admins|join(', ') }}</td><td>{{ mods|join(', ') }}</td></tr>{% endfor %}
</table>
<p>{{ people }} people in the community; the DSF Board on Slack: {{ board|join(', ') }}.</p>
</section>{% endblock %}
"""

DISCORD = """{% extends "base.html" %}{% block body %}
<nav class="side"><h3>{{ guild }}</h3>
{% for c in channels %}<a href="?channel={{ c.id }}&as={{ acting }}" class="{{ 'on' if c.id == current }}"># {{ c.name }}</a>
{% for t in threads.get(c.id, []) %}<a href="?channel={{ t.id }}&as={{ acting }}" class="{{ 'on' if t.id == current }}" style="padding-left:1.4rem">↳ {{ t.name }}</a>{% endfor %}
{% endfor %}
<h3>Direct messages</h3>
{% for d in dms %}<a href="?channel={{ d.id }}&as={{ d.username }}" class="{{ 'on' if d.id == current }}">@ {{ d.username }}</a>{% else %}<span class="empty">none yet</span>{% endfor %}
</nav>
<section class="feed">
<form class="asbar" method="get"><input type="hidden" name="channel" value="{{ current }}">
Act as <select name="as" onchange="this.form.submit()">{% for u in members %}<option value="{{ u }}" {{ 'selected' if u == acting }}>{{ u }}{{ ' (WG)' if u in wg }}</option>{% endfor %}</select>
<noscript><button>Switch</button></noscript></form>
<h2>{{ heading }}</h2>
{% for m in messages %}<div class="msg" id="m{{ m.id }}"><span class="who">{{ names.get(m.author_id, m.author_id) }}</span>
<span class="meta">{{ m.timestamp|when }}{{ ' · only ' ~ acting ~ ' can see this' if m.visible_to }}{{ ' · edited' if m.edited }}</span>
<div class="content">{% if m.content %}{{ m.content|discord }}{% elif not m.components %}<span class="empty">charterflow is thinking…</span>{% endif %}</div>
{% if m.thread_id %}<div class="meta"><a href="?channel={{ m.thread_id }}&as={{ acting }}">open thread ↳</a></div>{% endif %}
{% for row in m.components %}<div class="buttons">{% for b in row.components %}{% if b.custom_id %}
<form method="post" action="/act/discord/press"><input type="hidden" name="user" value="{{ acting }}">
<input type="hidden" name="channel_id" value="{{ m.channel_id }}"><input type="hidden" name="message_id" value="{{ m.id }}">
<input type="hidden" name="custom_id" value="{{ b.custom_id }}">
<button class="style-{{ b.style }}" data-custom-id="{{ b.custom_id }}" {{ 'disabled' if b.disabled }}>{{ b.label }}</button></form>
{% elif b.url %}<a href="{{ b.url }}" target="_blank"><button type="button">{{ b.label }} ↗</button></a>{% endif %}{% endfor %}</div>{% endfor %}
</div>{% else %}<p class="empty">No messages here yet.</p>{% endfor %}
<form class="msg" method="post" action="/act/discord/command">
<input type="hidden" name="user" value="{{ acting }}"><input type="hidden" name="channel_id" value="{{ current }}">
<b>Run a slash command as {{ acting }}</b><br>
/<select name="name">{% for c in commands %}<option>{{ c }}</option>{% endfor %}</select>
<input name="options" size="70" placeholder="option=value; option=value (e.g. text=Let us add a FAQ channel)">
<button class="primary">Send</button></form>
</section>{% endblock %}
"""

FORUM = """{% extends "base.html" %}{% block body %}
<nav class="side">
{% for c in categories %}<h3>{{ c.name }}{{ ' (private)' if c.read_restricted }}</h3>
{% for t in topics_by_category.get(c.id, []) %}<a href="?topic={{ t.id }}&as={{ acting }}" class="{{ 'on' if t.id == current }}">{{ t.title }}</a>{% else %}<span class="empty">no topics</span>{% endfor %}
{% endfor %}
<h3>Personal messages</h3>
{% for t in pms %}<a href="?topic={{ t.id }}&as={{ acting }}" class="{{ 'on' if t.id == current }}">✉ {{ t.title }}</a>{% else %}<span class="empty">none yet</span>{% endfor %}
</nav>
<section class="feed">
<form class="asbar" method="get"><input type="hidden" name="topic" value="{{ current or '' }}">
Act as <select name="as" onchange="this.form.submit()">{% for u in users %}<option value="{{ u }}" {{ 'selected' if u == acting }}>{{ u }}{{ ' (WG)' if u in wg }}</option>{% endfor %}</select>
<noscript><button>Switch</button></noscript></form>
{% if topic %}<h2>{{ topic.title }}</h2>
{% if topic.archetype == 'private_message' %}<p class="meta">Personal message to {{ recipients|join(', ') }}</p>{% endif %}
{% for p in posts %}<div class="msg"><span class="who">{{ names.get(p.user_id, p.user_id) }}</span> <span class="meta">#{{ p.post_number }} · {{ p.created_at|when }}</span>
<div class="content">{{ p.raw|forum }}</div>
{% for poll in polls.get(p.id, []) %}<div class="poll"><b>Poll “{{ poll.name }}”</b> <span class="tag">{{ poll.status }}</span>
<div class="buttons">{% for o in poll.options %}<form method="post" action="/act/forum/vote">
<input type="hidden" name="user" value="{{ acting }}"><input type="hidden" name="post_id" value="{{ p.id }}">
<input type="hidden" name="poll_name" value="{{ poll.name }}"><input type="hidden" name="option_id" value="{{ o.id }}">
<button class="primary" {{ 'disabled' if poll.status != 'open' }}>{{ o.label }}{% if poll.counts is not none %} ({{ poll.counts.get(o.id, 0) }}){% endif %}</button></form>{% endfor %}</div>
{% if poll.public %}<div class="meta">Voted: {{ poll.votes.keys()|join(', ') or 'nobody yet' }}</div>{% else %}<div class="meta">Secret ballot: {{ poll.votes|length }} voted{{ '; counts once closed' if poll.counts is none }}</div>{% endif %}</div>{% endfor %}
</div>{% endfor %}
{% else %}<p class="empty">Pick a topic.</p>{% endif %}
</section>{% endblock %}
"""

SLACK = """{% extends "base.html" %}{% block body %}
<nav class="side"><h3>{{ team }}</h3>
{% for c in channels %}<a href="?channel={{ c.id }}&as={{ acting }}" class="{{ 'on' if c.id == current }}"># {{ c.name }}{% if c.is_private %} <span class="tag">private</span>{% endif %}</a>{% endfor %}
</nav>
<section class="feed">
<form class="asbar" method="get"><input type="hidden" name="channel" value="{{ current }}">
Act as <select name="as" onchange="this.form.submit()">{% for u in users %}<option value="{{ u.id }}" {{ 'selected' if u.id == acting }}>{{ u.real_name }}{{ ' (Board)' if u.id in board }}</option>{% endfor %}</select>
<noscript><button>Switch</button></noscript></form>
{% for m in messages %}<div class="msg"><span class="who">{{ names.get(m.user, m.user) }}</span> <span class="meta">{{ m.ts|when }}</span>
{% for b in m.blocks or [] %}
{% if b.type in ('section', 'header') and b.text %}<div class="content">{{ b.text.text|slack(names) }}</div>{% endif %}
{% for f in b.fields or [] %}<div class="content">{{ f.text|slack(names) }}</div>{% endfor %}
{% if b.type == 'context' %}<div class="meta">{% for e in b.elements %}{{ e.text|slack(names) }} {% endfor %}</div>{% endif %}
{% if b.type == 'actions' %}<div class="buttons">{% for e in b.elements %}<form method="post" action="/act/slack/click">
<input type="hidden" name="user" value="{{ acting }}"><input type="hidden" name="channel" value="{{ current }}">
<input type="hidden" name="ts" value="{{ m.ts }}"><input type="hidden" name="action_id" value="{{ e.action_id }}">
<button class="{{ 'danger' if e.style == 'danger' else 'primary' if e.style == 'primary' else '' }}">{{ e.text.text }}</button></form>{% endfor %}</div>{% endif %}
{% else %}<div class="content">{{ m.text|slack(names) }}</div>{% endfor %}
{% for r in replies.get(m.ts, []) %}<div class="thread"><span class="who">{{ names.get(r.user, r.user) }}</span> <span class="meta">{{ r.ts|when }}</span><div class="content">{{ r.text|slack(names) }}</div></div>{% endfor %}
</div>{% else %}<p class="empty">No messages here yet.</p>{% endfor %}
</section>{% endblock %}
"""

OFF = """{% extends "base.html" %}{% block body %}<section class="feed"><h2>{{ title }}</h2>
<p>{{ text }}</p></section>{% endblock %}
"""

MAIL = """{% extends "base.html" %}{% block body %}
<section class="feed">
<h2>Mail</h2>
<p>What the loopback SMTP server (<code>{{ smtp }}</code>) received: outcome e-mails to applicants
who gave an address. Nothing leaves this machine.</p>
{% for m in messages %}<div class="msg" id="mail{{ loop.index }}"><span class="who">To {{ m.to|join(', ') }}</span>
<span class="when">{{ m.received_at }}</span> · from {{ m.from }}
<h3>{{ m.subject }}</h3><pre style="white-space:pre-wrap">{{ m.text }}</pre></div>
{% else %}<p class="empty">No e-mail yet.</p>{% endfor %}
</section>{% endblock %}
"""

TEMPLATES = {"base.html": BASE, "home.html": HOME, "discord.html": DISCORD, "forum.html": FORUM,
             "slack.html": SLACK, "off.html": OFF, "mail.html": MAIL}
