// Slack mrkdwn to safe HTML: the text is escaped first, and only the markup Slack knows becomes tags.
"use strict";

const Mrkdwn = (() => {
  const EMOJI = {
    gear: "⚙️", warning: "⚠️", x: "❌", white_check_mark: "✅", hourglass_flowing_sand: "⏳", hourglass: "⌛",
    outbox_tray: "📤", inbox_tray: "📥", speech_balloon: "💬", calendar: "📅", date: "📅",
    telephone_receiver: "📞", telephone: "☎️", phone: "☎️", memo: "📝", mailbox_with_mail: "📬",
    large_orange_circle: "🟠", large_blue_circle: "🔵", large_green_circle: "🟢", red_circle: "🔴",
    no_entry_sign: "🚫", no_entry: "⛔", rotating_light: "🚨", zzz: "💤", double_vertical_bar: "⏸️",
    black_square_for_stop: "⏹️", checkered_flag: "🏁", arrow_forward: "▶️", wave: "👋", tada: "🎉",
    bar_chart: "📊", bust_in_silhouette: "👤", busts_in_silhouette: "👥", email: "📧", envelope: "✉️",
    seedling: "🌱", clock3: "🕒", alarm_clock: "⏰", bell: "🔔", no_bell: "🔕", pushpin: "📌",
    mag: "🔍", information_source: "ℹ️", question: "❓", heavy_check_mark: "✔️", star: "⭐", fire: "🔥",
    chart_with_upwards_trend: "📈", iphone: "📱", calling: "📲", sparkles: "✨", eyes: "👀", raised_hand: "✋",
    thumbsup: "👍", "+1": "👍", point_right: "👉", lock: "🔒", hammer_and_wrench: "🛠️", new: "🆕",
    repeat: "🔁", stopwatch: "⏱️", handshake: "🤝", clipboard: "📋", link: "🔗", spiral_calendar_pad: "🗓️",
  };

  const escapeHtml = (text) => String(text)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  // Slack sends &amp; &lt; &gt; for literal characters; turn them back before escaping for HTML.
  const unslack = (text) => String(text).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

  const SAFE_URL = /^(https?:|mailto:|tel:)/i;

  function emoji(html) {
    return html.replace(/:([a-z0-9_+\-]+):/g, (all, name) => EMOJI[name] || all);
  }

  function inline(text) {
    // Inline markup over already-escaped text: the patterns can only add fixed tags.
    let html = text;
    html = html.replace(/`([^`\n]+)`/g, (all, code) => `\u0001code\u0002${code.replace(/[*_~:]/g, (c) => `&#${c.charCodeAt(0)};`)}\u0001/code\u0002`);
    // A marker opens after a space or punctuation and closes before one; inside a word it is a letter.
    const span = (mark, tag) => {
      const m = `\\${mark}`;
      const pattern = new RegExp(`(^|[\\s(>\\u0002\\u0003])${m}((?:[^${m}\\n]|${m}(?=[\\w\\u0003]))+?)${m}(?=$|[\\s).,!?:;\\u0001\\u0003])`, "g");
      html = html.replace(pattern, `$1<${tag}>$2</${tag}>`);
    };
    span("*", "b");
    span("_", "i");
    span("~", "s");
    html = emoji(html);
    return html.replace(/\u0001(\/?)code\u0002/g, "<$1code>");
  }

  function token(inner, people) {
    const [target, label] = splitOnce(inner, "|");
    if (target.startsWith("@")) {
      const id = target.slice(1);
      return `<span class="mention">@${escapeHtml(label || people(id) || id)}</span>`;
    }
    if (target.startsWith("#")) {
      return `<span class="mention">#${escapeHtml(label || target.slice(1))}</span>`;
    }
    if (target.startsWith("!")) {
      const special = target.slice(1);
      if (special.startsWith("subteam^")) return `<span class="mention">${escapeHtml(label || "@team")}</span>`;
      if (special.startsWith("date^")) return escapeHtml(label || "");
      return `<span class="mention broadcast">@${escapeHtml(special)}</span>`;
    }
    const url = unslack(target);
    if (SAFE_URL.test(url)) {
      return `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(unslack(label || url))}</a>`;
    }
    return escapeHtml(unslack(label || target));
  }

  function splitOnce(text, separator) {
    const at = text.indexOf(separator);
    return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
  }

  // One line (or a code block's text): control sequences <...> become placeholders, the rest is escaped.
  function line(text, people) {
    const tokens = [];
    const withHoles = text.replace(/<([^<>\n]+)>/g, (all, inner) => {
      tokens.push(token(inner, people));
      return `\u0003${tokens.length - 1}\u0003`;
    });
    const escaped = escapeHtml(unslack(withHoles));
    return inline(escaped).replace(/\u0003(\d+)\u0003/g, (all, i) => tokens[Number(i)]);
  }

  function toHtml(text, people = () => null) {
    if (text == null) return "";
    const parts = String(text).split("```");
    let html = "";
    parts.forEach((part, i) => {
      if (i % 2 === 1) {
        html += `<pre>${escapeHtml(unslack(part.replace(/^\n/, "")))}</pre>`;
        return;
      }
      const lines = part.split("\n");
      let quote = [];
      const flush = () => {
        if (quote.length) html += `<blockquote>${quote.join("<br>")}</blockquote>`;
        quote = [];
      };
      lines.forEach((raw, n) => {
        const quoted = raw.match(/^(>|&gt;) ?(.*)$/);
        if (quoted && raw.startsWith(">")) {
          quote.push(line(quoted[2], people));
          return;
        }
        flush();
        html += line(raw, people);
        if (n < lines.length - 1) html += "<br>";
      });
      flush();
    });
    return html;
  }

  function plain(text) {
    return emoji(escapeHtml(text == null ? "" : text));
  }

  return { toHtml, plain, escapeHtml };
})();
