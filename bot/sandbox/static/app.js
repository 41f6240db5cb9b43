// The sandbox page: one person playing the team (in Slack, a channel per clinic) and the leads (phones,
// inboxes, each clinic's web form and calendar).
"use strict";

const Sandbox = (() => {
  const $ = (selector) => document.querySelector(selector);
  const { h } = Blocks;
  const USER_KEY = "followup-sandbox-user";

  let state = null;
  let fetchedAt = 0;
  let me = localStorage.getItem(USER_KEY) || "";
  let view = "channel";
  let channel = "";            // the channel shown; empty: the person's first (the sandbox picks)
  let openThreadTs = null;
  let phoneNumber = null;
  const talkingTo = new Map();  // phone number -> the clinic number whose conversation is open on it
  let leadClinic = "";          // the clinic the new-lead form is for (empty: the shown channel's)
  let calendarClinic = "";      // the clinic whose calendar is shown (empty: the shown channel's)
  let selectedEmail = null;
  let shownModal = "";
  let loading = null;
  let again = false;
  const dismissed = new Set();

  // --- talking to the sandbox --------------------------------------------------------------------

  async function post(path, body) {
    let answer;
    try {
      const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      answer = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
    } catch (error) {
      answer = { ok: false, error: `The sandbox did not answer: ${error.message}` };
    }
    if (!answer.ok) toast(answer.error || "That did not work", true);
    load();
    return answer;
  }

  function load() {
    if (loading) { again = true; return loading; }
    const asked = channel;
    loading = fetch(`/sandbox/api/state?user=${encodeURIComponent(me)}&channel=${encodeURIComponent(asked)}`, { cache: "no-store" })
      .then((r) => r.json())
      .then((snapshot) => {
        // Another channel was picked while this one loaded: this snapshot is of the old one.
        if (asked !== channel && state) { again = true; return; }
        state = snapshot;
        fetchedAt = performance.now();
        if (!state.team.some((m) => m.id === me)) me = state.team[0].id;
        if (!channel || asked === channel) channel = state.channel.id;
        render();
      })
      .catch(() => {})
      .finally(() => {
        loading = null;
        if (again) { again = false; load(); }
      });
    return loading;
  }

  function listen() {
    let timer = null;
    const refresh = () => { clearTimeout(timer); timer = setTimeout(load, 30); };
    if (window.EventSource) {
      const events = new EventSource("/sandbox/api/events");
      events.addEventListener("changed", refresh);
    }
    setInterval(load, 5000); // a fallback when events cannot get through
  }

  // --- small helpers -------------------------------------------------------------------------------

  const person = (id) => {
    if (!state) return null;
    if (id && id.startsWith("U0BOT")) return "followup";
    const member = state.team.find((m) => m.id === id);
    return member ? member.real_name : null;
  };

  function simNow() {
    if (!state) return Date.now() / 1000;
    return state.clock.now + ((performance.now() - fetchedAt) / 1000) * state.clock.scale;
  }

  function when(epoch, withSeconds = false) {
    const zone = state ? state.clock.timezone : undefined;
    return new Intl.DateTimeFormat("en-US", { timeZone: zone, weekday: "short", month: "short", day: "numeric",
      hour: "numeric", minute: "2-digit", ...(withSeconds ? { second: "2-digit" } : {}) }).format(new Date(epoch * 1000));
  }

  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours} h ${m % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function toast(message, bad = false) {
    const el = $("#toast");
    el.textContent = message;
    el.className = `toast${bad ? " bad" : ""}`;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, bad ? 7000 : 3500);
  }

  function keepFocus(container, draw) {
    const active = document.activeElement;
    const key = active && container.contains(active) ? focusKey(active) : null;
    const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 60;
    const top = container.scrollTop;
    draw();
    if (nearBottom) container.scrollTop = container.scrollHeight;
    else container.scrollTop = top;
    if (key) {
      const again = container.querySelector(key);
      if (again) again.focus();
    }
  }

  // Live updates redraw only what changed: a message whose content is the same keeps its DOM node,
  // so a selection inside it, the scroll position and a hovered button all survive the update.
  const signatures = new WeakMap();

  function reconcile(box, items) {
    const existing = new Map();
    for (const child of Array.from(box.children)) if (child.dataset.key) existing.set(child.dataset.key, child);
    const wanted = items.map((item) => {
      const old = existing.get(item.key);
      if (old && signatures.get(old) === item.sig) {
        if (item.patch) item.patch(old);
        return old;
      }
      const fresh = item.el();
      fresh.dataset.key = item.key;
      signatures.set(fresh, item.sig);
      return fresh;
    });
    const keep = new Set(wanted);
    for (const child of Array.from(box.children)) if (!keep.has(child)) child.remove();
    wanted.forEach((node, index) => { if (box.children[index] !== node) box.insertBefore(node, box.children[index] || null); });
  }

  function focusKey(el) {
    const message = el.closest("[data-ts]");
    const action = el.getAttribute("data-action-id");
    if (message && action) return `[data-ts="${message.dataset.ts}"] [data-action-id="${action}"]`;
    if (message) return `[data-ts="${message.dataset.ts}"] .thread-link`;
    return null;
  }

  // --- rendering -----------------------------------------------------------------------------------

  const clinicOf = (slug) => state.clinics.find((c) => c.slug === slug) || null;
  const clinicByNumber = (number) => state.clinics.find((c) => c.phone === number) || null;

  function render() {
    $("#business-name").textContent = `· ${state.clinics.map((c) => c.name).join(" · ")}`;
    renderWho();
    renderChannels();
    renderLeadForm();
    renderClock();
    renderMissing();
    renderChannel();
    renderThread();
    renderHome();
    renderPhones();
    renderInbox();
    renderCalendar();
    renderModal();
  }

  // --- the clinic's calendar (Calendly's webhooks) ------------------------------------------------

  function calendarOf() {
    return clinicOf(calendarClinic) || state.business;
  }

  function clinicDate(seconds) {
    // en-CA writes dates as YYYY-MM-DD, what a date input takes.
    return new Intl.DateTimeFormat("en-CA", { timeZone: calendarOf().timezone }).format(new Date(seconds * 1000));
  }

  function clinicTime(seconds) {
    return new Intl.DateTimeFormat("en-US", { timeZone: calendarOf().timezone, weekday: "short", month: "short",
      day: "numeric", hour: "numeric", minute: "2-digit" }).format(new Date(seconds * 1000));
  }

  function clinicOptions(select, picked) {
    const key = state.clinics.map((c) => c.slug).join(",");
    if (select.dataset.key !== key) {
      select.dataset.key = key;
      select.replaceChildren(...state.clinics.map((c) => h("option", { value: c.slug, text: c.name })));
    }
    select.value = picked;
  }

  const BOOKING_STATES = { booked: "booked", confirmed: "confirmed", attended: "attended", no_show: "no-show",
    cancelled: "cancelled", rescheduled: "moved" };

  function renderCalendar() {
    const clinic = calendarOf();
    clinicOptions($("#calendar-clinic"), clinic.slug);
    $("#calendar-title").textContent = `${clinic.name}'s calendar`;
    $("#calendar-zone").textContent = clinic.timezone;
    const select = $("#calendar-lead");
    const leads = state.leads.filter((l) => (l.email || l.phone) && l.clinic === clinic.slug);
    const leadKey = leads.map((l) => `${l.id}:${l.name}`).join(",");
    if (select.dataset.key !== leadKey) {
      const picked = select.value;
      select.dataset.key = leadKey;
      select.replaceChildren(...leads.map((l) => h("option", { value: String(l.id), text: `${l.name || l.phone || l.email} (#${l.id})` })));
      if (picked && leads.some((l) => String(l.id) === picked)) select.value = picked;
    }
    const day = $("#calendar-date");
    if (!day.value) day.value = clinicDate(state.clock.now + 86400);
    const list = $("#calendar-bookings");
    const bookings = (state.calendar || []).filter((b) => b.clinic === clinic.slug);
    const key = `${clinic.slug}:${bookings.map((b) => `${b.id}:${b.status}`).join(",")}`;
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren(...bookings.map((b) => {
      const ahead = b.status === "booked" || b.status === "confirmed";
      const act = (action) => () => calendarAction({ action, appointment_id: b.id,
        date: $("#calendar-date").value, time: $("#calendar-time").value });
      return h("li", { class: "booking", "data-testid": "booking" }, [
        h("span", { class: "mail-who", text: `${b.lead_name || `Lead #${b.lead_id}`} · ${clinicTime(b.start)}` }),
        h("span", { class: "small muted", "data-testid": "booking-status", text: ` ${BOOKING_STATES[b.status] || b.status}` }),
        ahead ? h("span", { class: "row" }, [
          h("button", { type: "button", text: "Move to the date and time above", onclick: act("move") }),
          h("button", { type: "button", text: "Cancel", onclick: act("cancel") }),
          h("button", { type: "button", text: "No-show", onclick: act("no_show") }),
        ]) : null,
      ]);
    }));
  }

  async function calendarAction(fields) {
    const result = $("#calendar-result");
    const answer = await post("/sandbox/api/calendar", fields);
    const said = answer.answer || {};
    if (answer.ok && said.ignored) {
      result.textContent = `Calendly was answered: ${said.ignored}`;
      result.className = "result bad";
    } else if (answer.ok) {
      const what = { book: "Booked", move: "Moved", cancel: "Cancelled", no_show: "Marked a no-show" }[fields.action];
      result.textContent = `${what}: the bot took Calendly's webhook${said.result ? ` (${said.result})` : ""}.`;
      result.className = "result good";
    } else {
      result.textContent = answer.error || "Calendly's webhook was refused";
      result.className = "result bad";
    }
  }

  function renderWho() {
    const select = $("#who");
    if (select.options.length !== state.team.length) {
      select.replaceChildren(...state.team.map((m) => h("option", { value: m.id, text: `${m.real_name}` })));
    }
    select.value = me;
    const member = state.team.find((m) => m.id === me);
    $("#who-role").textContent = member ? `${member.role} · @${member.name}` : "";
  }

  function renderChannels() {
    const list = $("#channel-list");
    const key = JSON.stringify([me, view, state.channel.id, state.clinics.map((c) => [c.channel, c.members])]);
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren(...state.clinics.map((c) => {
      const member = c.members.includes(me);
      return h("button", { type: "button", class: `nav-item${member ? "" : " not-member"}`, "data-view": "channel",
        "data-channel": c.channel.id, "aria-current": view === "channel" && c.channel.id === state.channel.id ? "page" : null,
        title: member ? `${c.name}'s leads channel` : `${c.name}'s leads channel: you are not a member`,
        onclick: () => showChannel(c.channel.id) }, [
        h("span", { text: `# ${c.channel.name}` }),
        h("span", { class: "small", text: member ? c.name : `${c.name} · not a member` }),
      ]);
    }));
    const shown = state.business;
    $("#channel-title").textContent = `# ${state.channel.name}`;
    $("#channel-about").textContent = `${shown.name}: lead cards, threads and call tasks`;
    $("#channel-view").setAttribute("aria-label", `#${state.channel.name} channel`);
    $("#messages").setAttribute("aria-label", `Messages in #${state.channel.name}`);
  }

  function showChannel(id) {
    if (id !== channel) { channel = id; openThreadTs = null; }
    showView("channel");
    load();
  }

  function renderLeadForm() {
    const clinic = clinicOf(leadClinic) || state.business;
    clinicOptions($("#lead-clinic"), clinic.slug);
    $("#lead-form-title").textContent = `${clinic.name}: book a ${/dental/i.test(clinic.playbook) ? "free consultation" : "first visit"}`;
    $("#lead-form-about").textContent = `${clinic.name}'s website form: it posts ${clinic.lead_route} with ${clinic.name}'s own token.`;
  }

  function renderClock() {
    document.querySelectorAll("[data-speed]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.speed === state.clock.speed)));
    $("#clock-zone").textContent = state.clock.timezone;
    $("#skip-next").disabled = !state.clock.next_due;
    tick();
  }

  function tick() {
    if (!state) return;
    const now = simNow();
    $("#clock-now").textContent = when(now, true);
    const next = state.clock.next_due;
    const el = $("#next-due");
    if (!next) {
      el.textContent = "Nothing scheduled";
      return;
    }
    const channels = { sms: "text", email: "email", call_task: "call", stage: "stage" };
    const what = next.step ? `${next.step} (${channels[next.channel] || next.channel})` : "a touch";
    const who = (next.lead_name || (next.lead_id ? `lead #${next.lead_id}` : "")) + (next.clinic ? ` (${next.clinic})` : "");
    const wait = next.at - now;
    el.title = el.textContent = `Next: ${what}${who ? ` for ${who}` : ""} · ${when(next.at)} · ${wait > 0 ? `in ${span(wait)}` : "due now"}`;
  }

  function renderMissing() {
    const notices = $("#notices");
    notices.hidden = !(state.notices || []).length;
    notices.replaceChildren(...(state.notices || []).map((n) => h("p", { class: "small", text: n })));
    const box = $("#missing");
    box.hidden = !state.missing.length;
    box.replaceChildren(h("strong", { text: "Not wired yet" }), ...state.missing.map((m) => h("p", { class: "small", text: m })));
  }

  function messageContext(message, ephemeral = false) {
    return {
      people: person,
      team: state.team,
      timezone: state.clock.timezone,
      surface: "message",
      act: (action, blockId, control) => {
        if (control) control.disabled = true;
        post("/sandbox/api/slack/click", { user: me, channel: state.channel.id, ts: message.ts, block_id: blockId,
          action, ephemeral }).finally(() => { if (control) control.disabled = false; });
      },
    };
  }

  function messageEl(message, { inThread = false } = {}) {
    const bot = message.author === "bot";
    const name = bot ? "followup" : (person(message.user) || message.user);
    const content = message.blocks && message.blocks.length
      ? Blocks.render(message.blocks, messageContext(message))
      : h("div", { class: "bk-text", html: Mrkdwn.toHtml(message.text, person) });
    const replies = inThread ? [] : threadReplies(message.ts);
    return h("article", { class: `msg${bot ? " from-bot" : ""}`, "data-ts": message.ts }, [
      h("div", { class: "avatar", "aria-hidden": "true", text: bot ? "f" : name[0] }),
      h("div", { class: "msg-body" }, [
        h("div", { class: "msg-meta" }, [h("b", { text: name }), bot ? h("span", { class: "badge", text: "APP" }) : null,
          h("time", { text: when(message.sim_at || Number(message.ts)) }), message.edited ? h("span", { class: "muted small", text: "(edited)" }) : null]),
        content,
        ...(message.files || []).map(fileEl),
        replies.length ? repliesButton(message.ts, replies.length) : null,
      ]),
    ]);
  }

  // A file shared with the message (the digest's chart, a lead's photo): a picture shows, as in Slack.
  const PICTURE = /\.(png|jpe?g|gif|webp)$/i;

  function fileEl(file) {
    const url = `/sandbox/api/files/${encodeURIComponent(file.id)}`;
    const title = file.title || file.name || "file";
    if (PICTURE.test(file.name || "")) {
      return h("figure", { class: "msg-file", "data-testid": "file" }, [
        h("img", { src: url, alt: title, loading: "lazy" }),
        h("figcaption", { class: "muted small", text: title }),
      ]);
    }
    return h("div", { class: "msg-file", "data-testid": "file" }, [
      h("a", { href: url, download: file.name || "file", text: `📎 ${title}` })]);
  }

  function repliesButton(ts, count) {
    return h("button", { type: "button", class: "thread-link", onclick: () => openThread(ts),
      text: `${count} ${count === 1 ? "reply" : "replies"} ›` });
  }

  // A new reply changes only the card's "N replies" button, not the card (whose text may be selected).
  function patchReplies(node, ts) {
    const body = node.querySelector(":scope > .msg-body");
    const button = body && body.querySelector(":scope > .thread-link");
    const count = threadReplies(ts).length;
    const label = `${count} ${count === 1 ? "reply" : "replies"} ›`;
    if (!body) return;
    if (!count) { if (button) button.remove(); return; }
    if (!button) body.append(repliesButton(ts, count));
    else if (button.textContent !== label) button.textContent = label;
  }

  function ephemeralEl(note) {
    const content = note.blocks && note.blocks.length
      ? Blocks.render(note.blocks, messageContext(note, true))
      : h("div", { class: "bk-text", html: Mrkdwn.toHtml(note.text, person) });
    return h("article", { class: "msg ephemeral", "data-ts": note.ts, "data-testid": "ephemeral" }, [
      h("div", { class: "avatar", "aria-hidden": "true", text: note.from === "me" ? (person(me) || "?")[0] : "f" }),
      h("div", { class: "msg-body" }, [
        h("div", { class: "msg-meta" }, [h("b", { text: note.from === "me" ? person(me) : "followup" }),
          h("span", { class: "muted small", text: "Only visible to you" }),
          h("button", { type: "button", class: "link small", text: "Dismiss", onclick: () => { dismissed.add(note.ts); renderChannel(); renderThread(); } })]),
        content,
      ]),
    ]);
  }

  const isTopLevel = (m) => !m.thread_ts || m.thread_ts === m.ts;
  const threadReplies = (ts) => state.messages.filter((m) => m.thread_ts === ts && m.ts !== ts);

  function renderChannel() {
    const box = $("#messages");
    keepFocus(box, () => {
      const items = [
        ...state.messages.filter(isTopLevel).map((m) => ({ ts: m.ts, key: `m${m.ts}`, sig: JSON.stringify(m),
          el: () => messageEl(m), patch: (node) => patchReplies(node, m.ts) })),
        ...state.ephemerals.filter((e) => !e.thread_ts && !dismissed.has(e.ts)).map((e) => ({ ts: e.ts, key: `e${e.ts}`,
          sig: JSON.stringify(e), el: () => ephemeralEl(e) })),
      ].sort((a, b) => Number(a.ts) - Number(b.ts));
      if (!items.length) {
        box.replaceChildren(h("p", { class: "empty", text: `No leads for ${state.business.name} yet. Send one from the New lead form on the right.` }));
        return;
      }
      reconcile(box, items);
    });
  }

  // Slack's permalinks (…/archives/C…/p1700000000123456) point at a workspace the sandbox does not
  // have: a click on one shows that message here instead, and opens its thread.
  const PERMALINK = /\/archives\/([A-Z0-9]+)\/p(\d{10})(\d{6})/;

  function showMessage(ts) {
    const message = state && state.messages.find((m) => m.ts === ts);
    if (!message) { toast("That message is not in this channel", true); return; }
    const top = isTopLevel(message) ? message.ts : message.thread_ts;
    showView("channel");
    const el = $("#messages").querySelector(`[data-ts="${CSS.escape(top)}"]`);
    if (el) {
      el.scrollIntoView({ block: "center" });
      el.classList.add("flash");
      setTimeout(() => el.classList.remove("flash"), 1600);
    }
    openThread(top);
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[href]");
    const found = link && PERMALINK.exec(link.getAttribute("href"));
    if (!found) return;
    event.preventDefault();
    showMessage(`${found[2]}.${found[3]}`);
  });

  function openThread(ts) {
    openThreadTs = ts;
    $("#thread").hidden = false;
    renderThread();
    $("#thread-text").focus();
  }

  function renderThread() {
    const pane = $("#thread");
    if (!openThreadTs || !state) { pane.hidden = true; return; }
    const parent = state.messages.find((m) => m.ts === openThreadTs);
    if (!parent) { pane.hidden = true; openThreadTs = null; return; }
    pane.hidden = false;
    const box = $("#thread-messages");
    keepFocus(box, () => {
      const items = [
        ...threadReplies(openThreadTs).map((m) => ({ ts: m.ts, key: `m${m.ts}`, sig: JSON.stringify(m),
          el: () => messageEl(m, { inThread: true }) })),
        ...state.ephemerals.filter((e) => e.thread_ts === openThreadTs && !dismissed.has(e.ts)).map((e) => ({
          ts: e.ts, key: `e${e.ts}`, sig: JSON.stringify(e), el: () => ephemeralEl(e) })),
      ].sort((a, b) => Number(a.ts) - Number(b.ts));
      const count = `${items.length} ${items.length === 1 ? "reply" : "replies"}`;
      reconcile(box, [
        { key: `p${parent.ts}`, sig: JSON.stringify(parent), el: () => messageEl(parent, { inThread: true }) },
        { key: "divider", sig: count, el: () => h("div", { class: "divider-label", text: count }) },
        ...items,
      ]);
    });
    $("#thread-text").placeholder = state.send_marker
      ? `Reply in thread: an internal note. Start with ${state.send_marker} to text or email the lead.`
      : "Reply in thread (an internal note)";
  }

  function renderHome() {
    const box = $("#home");
    if (!state.home) {
      delete box.dataset.sig;
      box.replaceChildren(h("p", { class: "empty", text: "The Home tab is empty until the app publishes one for you." }));
      return;
    }
    const sig = JSON.stringify(state.home);
    if (box.dataset.sig === sig) return;  // unchanged: keep the selection and scroll position
    box.dataset.sig = sig;
    keepFocus(box, () => box.replaceChildren(Blocks.render(state.home.blocks, {
      people: person, team: state.team, timezone: state.clock.timezone, surface: "home",
      act: (action, blockId, control) => {
        if (control) control.disabled = true;
        post("/sandbox/api/slack/view-action", { user: me, view_id: state.home.id, block_id: blockId, action, values: {} })
          .finally(() => { if (control) control.disabled = false; });
      },
    })));
  }

  function phoneLabel(phone) {
    return `${phone.name || "Unknown"} · ${phone.number}${phone.opted_out ? " (STOP)" : ""}`;
  }

  // The conversation open on a phone: the one picked, else the one with the newest text (the phone lists it first).
  function conversationOn(phone) {
    if (!phone || !phone.conversations.length) return null;
    const picked = talkingTo.get(phone.number);
    return phone.conversations.find((c) => c.clinic_number === picked) || phone.conversations[0];
  }

  function renderPhones() {
    const pick = $("#phone-pick");
    const phones = state.phones;
    if (!phones.some((p) => p.number === phoneNumber)) phoneNumber = phones.length ? phones[0].number : null;
    const labels = phones.map(phoneLabel).join("|");
    if (pick.dataset.key !== labels) {  // an open menu is not rebuilt under the pointer
      pick.dataset.key = labels;
      pick.replaceChildren(...phones.map((p) => h("option", { value: p.number, text: phoneLabel(p) })));
    }
    pick.value = phoneNumber || "";
    pick.disabled = !phones.length;
    const phone = phones.find((p) => p.number === phoneNumber);
    const talk = conversationOn(phone);
    $("#sms-text").disabled = !talk;
    $("#sms-form button").disabled = !talk;
    document.querySelectorAll(".chip").forEach((c) => { c.disabled = !talk; });
    $("#phone-name").textContent = phone ? (phone.name || "Unknown lead") : "No phones yet";
    $("#phone-number").textContent = !phone ? "Send a lead with a mobile number first."
      : talk ? `${phone.number} · texting ${talk.clinic_name} (${talk.clinic_number})` : phone.number;
    const tabs = $("#conversations");
    const tabsKey = phone ? JSON.stringify([phone.number, talk && talk.clinic_number, phone.conversations.map((c) => [c.clinic_number, c.opted_out])]) : "";
    if (tabs.dataset.key !== tabsKey) {
      tabs.dataset.key = tabsKey;
      tabs.replaceChildren(...(phone ? phone.conversations : []).map((c) => h("button", {
        type: "button", class: `conversation${c.opted_out ? " stopped" : ""}`, "data-testid": "conversation",
        "data-clinic-number": c.clinic_number, "aria-pressed": String(talk === c),
        title: c.opted_out ? `${c.clinic_name}: this phone texted STOP to ${c.clinic_number}` : `Texts with ${c.clinic_name}`,
        onclick: () => { talkingTo.set(phone.number, c.clinic_number); renderPhones(); },
        text: `${c.clinic_name} · ${c.clinic_number}${c.opted_out ? " (STOP)" : ""}`,
      })));
    }
    const box = $("#bubbles");
    const sig = talk ? JSON.stringify([phone.number, talk.clinic_number, talk.texts]) : "";
    if (box.dataset.sig === sig) return;  // unchanged: keep the selection and scroll position
    box.dataset.sig = sig;
    keepFocus(box, () => {
      if (!talk) { box.replaceChildren(); return; }
      box.replaceChildren(...talk.texts.map((t) => {
        if (t.direction === "refused") {
          return h("div", { class: "bubble-note", text: `Twilio refused a text to this phone: ${t.status}` });
        }
        const mine = t.direction === "in";
        return h("div", { class: `bubble ${mine ? "mine" : "theirs"}${t.direction === "carrier" ? " carrier" : ""}`, "data-testid": mine ? "sms-in" : "sms-out" }, [
          t.direction === "carrier" ? h("div", { class: "small muted", text: "Automatic reply (carrier opt-out)" }) : null,
          h("div", { class: "bubble-text" }, linkify(t.body)),
          h("div", { class: "bubble-meta", text: `${mine ? `to ${talk.clinic_number}` : `from ${talk.clinic_number}`} · ${when(t.at)}${!mine && t.status && t.direction === "out" ? ` · ${t.status}` : ""}` }),
        ]);
      }));
    });
  }

  // Links in a text are tappable. The clinic's tracked booking link records the tap as the lead's
  // phone would, without leaving the sandbox for the booking site it redirects to.
  function linkify(body) {
    const parts = [];
    let last = 0;
    for (const match of body.matchAll(/https?:\/\/[^\s]+/g)) {
      parts.push(body.slice(last, match.index));
      const url = match[0].replace(/[).,!?]+$/, "");
      last = match.index + url.length;
      const local = url.startsWith(`${location.origin}/`);
      parts.push(h("a", { href: url, target: "_blank", rel: "noopener noreferrer", onclick: local ? (event) => {
        event.preventDefault();
        fetch(url, { redirect: "manual", cache: "no-store" })
          .then(() => toast("Link tapped: the bot recorded it (the booking site itself is not opened in the sandbox)."))
          .catch(() => toast("The link did not answer", true));
      } : null, text: url }));
    }
    parts.push(body.slice(last));
    return parts;
  }

  function renderInbox() {
    const list = $("#inbox");
    const emails = [...state.emails].reverse();
    $("#email-count").textContent = emails.length ? String(emails.length) : "";
    // Redrawn only when it changed, so a click never lands on a list that moved under the pointer.
    const key = `${emails.map((e) => e.id).join(",")}:${selectedEmail}`;
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      drawInbox(list, emails);
    }
    showEmail();
  }

  function drawInbox(list, emails) {
    list.replaceChildren(...emails.map((e) => h("li", {}, h("button", {
      type: "button", class: `mail${selectedEmail === e.id ? " selected" : ""}`, "data-testid": "mail", "aria-current": selectedEmail === e.id ? "true" : null,
      onclick: () => { selectedEmail = e.id; renderInbox(); $("#email-view").focus(); },
    }, [h("span", { class: "mail-who", text: e.direction === "in" ? `${e.from_name || e.from} → clinic` : `To ${e.to.join(", ")}` }),
      h("span", { class: "mail-clinic", "data-testid": "mail-clinic", text: mailClinic(e) }),
      h("span", { class: "mail-subject", text: e.subject || "(no subject)" }),
      h("span", { class: "mail-when small muted", text: when(e.at) })]))));
    if (!emails.length) list.replaceChildren(h("li", { class: "empty", text: "No email yet." }));
  }

  // Which clinic an email is from (sent) or to (a lead's), and at which address.
  function mailClinic(email) {
    const clinic = clinicOf(email.clinic);
    const name = clinic ? clinic.name : "no clinic";
    return email.direction === "in" ? `to ${name} <${email.to.join(", ")}>` : `from ${name} <${email.from}>`;
  }

  function showEmail() {
    const email = state.emails.find((e) => e.id === selectedEmail);
    const viewer = $("#email-view");
    viewer.hidden = !email;
    if (!email || viewer.dataset.shown === String(email.id)) return;
    viewer.dataset.shown = String(email.id);
    viewer.tabIndex = -1;
    const parts = [];
    parts.push(h("h3", { text: email.subject || "(no subject)" }));
    parts.push(h("p", { class: "small muted", text: `From ${email.from_name ? `${email.from_name} <${email.from}>` : email.from} · to ${email.to.join(", ")}${email.reply_to ? ` · reply-to ${email.reply_to}` : ""} · ${when(email.at)}` }));
    if (email.html) {
      const frame = h("iframe", { class: "mail-html", title: "The HTML part", sandbox: "", referrerpolicy: "no-referrer" });
      frame.srcdoc = email.html;
      parts.push(h("div", { class: "part-label", text: "HTML part" }), frame);
    }
    parts.push(h("div", { class: "part-label", text: "Text part" }), h("pre", { class: "mail-text", text: email.text || "(none)" }));
    if (email.direction === "out") {
      const lead = state.leads.find((l) => l.email === email.to[0]);
      const form = h("form", { class: "reply-form", autocomplete: "off" }, [
        h("label", { for: "reply-text", text: `Reply as ${lead ? lead.name || email.to[0] : email.to[0]}` }),
        h("textarea", { id: "reply-text", rows: 3, required: true }),
        h("button", { type: "submit", text: "Send reply" }),
      ]);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const text = form.querySelector("textarea").value;
        const subject = /^re:/i.test(email.subject) ? email.subject : `Re: ${email.subject}`;
        const answer = await post("/sandbox/api/email", { from: email.to[0], from_name: lead ? lead.name : "", subject, text, in_reply_to: email.id });
        const clinic = clinicOf(email.clinic);
        if (answer.ok) { form.reset(); toast(`Reply sent to ${clinic ? clinic.name : "the clinic"} (${email.reply_to || email.from})`); }
      });
      parts.push(form);
    }
    viewer.replaceChildren(...parts);
  }

  function renderModal() {
    const root = $("#modal-root");
    const modal = state.modal;
    const key = modal ? `${modal.id}:${modal.hash}:${JSON.stringify(modal.errors || {})}` : "";
    if (key === shownModal) return;
    const previous = root.querySelector(".modal");
    const kept = previous && modal && previous.dataset.viewId === modal.id ? Blocks.values(previous) : null;
    shownModal = key;
    if (!modal) { root.replaceChildren(); return; }
    const ctx = {
      people: person, team: state.team, timezone: state.clock.timezone, surface: "modal", errors: modal.errors || {},
      act: (action, blockId) => post("/sandbox/api/slack/view-action", { user: me, view_id: modal.id, block_id: blockId, action, values: Blocks.values(root) }),
    };
    const body = Blocks.render(modal.blocks, ctx);
    if (kept) Blocks.restore(body, kept);
    const form = h("form", { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "modal-title", "data-view-id": modal.id, "data-testid": "modal" }, [
      h("header", {}, [h("h2", { id: "modal-title", html: Mrkdwn.plain(Blocks.plainText(modal.title)) }),
        h("button", { type: "button", class: "icon", "aria-label": "Close", text: "✕", onclick: closeModal })]),
      h("div", { class: "modal-body" }, body),
      h("footer", {}, [
        h("button", { type: "button", onclick: closeModal, text: Blocks.plainText(modal.close) || "Cancel" }),
        modal.submit ? h("button", { type: "submit", class: "primary", text: Blocks.plainText(modal.submit) }) : null,
      ]),
    ]);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const missing = Blocks.missingRequired(form);
      if (missing.length) {
        missing.forEach((blockId) => {
          const box = form.querySelector(`.bk-input[data-block-id="${CSS.escape(blockId)}"]`);
          box.classList.add("has-error");
          if (!box.querySelector(".bk-error")) box.append(h("div", { class: "bk-error", role: "alert", text: "Please complete this required field." }));
        });
        const first = form.querySelector(".has-error .bk-field-control");
        if (first) first.focus();
        return;
      }
      const submit = form.querySelector("footer .primary");
      if (submit) submit.disabled = true;
      post("/sandbox/api/slack/submit", { user: me, view_id: modal.id, values: Blocks.values(form) })
        .finally(() => { if (submit) submit.disabled = false; });
    });
    root.replaceChildren(h("div", { class: "backdrop" }, form));
    const first = form.querySelector("[data-autofocus]") || form.querySelector(".bk-field-control, .modal-body button, footer button");
    if (first) first.focus();
  }

  function closeModal() {
    if (state && state.modal) post("/sandbox/api/slack/close", { user: me, view_id: state.modal.id });
  }

  function confirmDialog(confirm) {
    return new Promise((resolve) => {
      const root = h("div", { class: "backdrop confirm-backdrop" });
      const done = (yes) => { root.remove(); resolve(yes); };
      const dialog = h("div", { class: "modal confirm", role: "alertdialog", "aria-modal": "true", "aria-labelledby": "confirm-title" }, [
        h("header", {}, h("h2", { id: "confirm-title", html: Mrkdwn.plain(Blocks.plainText(confirm.title) || "Are you sure?") })),
        h("div", { class: "modal-body" }, Blocks.text(confirm.text, person)),
        h("footer", {}, [
          h("button", { type: "button", text: Blocks.plainText(confirm.deny) || "Cancel", onclick: () => done(false) }),
          h("button", { type: "button", class: confirm.style === "danger" ? "danger" : "primary", text: Blocks.plainText(confirm.confirm) || "Yes", onclick: () => done(true) }),
        ]),
      ]);
      root.addEventListener("keydown", (event) => { if (event.key === "Escape") { event.stopPropagation(); done(false); } });
      root.append(dialog);
      document.body.append(root);
      dialog.querySelector("footer .danger, footer .primary").focus();
    });
  }

  // --- the lead's side ------------------------------------------------------------------------------

  const SAMPLES = [
    ["Maria Gonzalez", "Lower back pain since last week, hoping to get seen soon."],
    ["James Carter", "Neck stiffness from desk work. Do you take Blue Cross?"],
    ["Priya Shah", "Looking for a chiropractor after a car accident."],
    ["Tom Becker", "Headaches most afternoons. What does a first visit cost?"],
    ["Aisha Bello", "Sciatica flare-up, can you help?"],
  ];
  const DENTAL_SAMPLES = [
    ["Nora Whitaker", "A molar has been aching when I drink anything cold. Any openings this week?"],
    ["Evan Brooks", "Due for a cleaning and my kids too. Do you take Delta Dental?"],
    ["Lucia Romero", "Chipped a front tooth this morning. Can someone see me soon?"],
    ["Sam Patel", "Interested in Invisalign. How does the free consultation work?"],
    ["Grace Kim", "Gums bleed when I floss. What does a new-patient exam cost?"],
  ];

  function fillSample() {
    const form = $("#lead-form");
    const clinic = state ? (clinicOf(leadClinic) || state.business) : null;
    const dental = clinic && /dental/i.test(clinic.playbook);
    const area = dental ? "720" : "312";
    const used = new Set((state ? state.leads : []).map((l) => l.phone));
    let n = (state ? state.leads.length : 0) + 10;
    while (used.has(`+1${area}555${String(100 + n).padStart(4, "0")}`)) n += 1;
    const samples = dental ? DENTAL_SAMPLES : SAMPLES;
    const [name, message] = samples[n % samples.length];
    form.name.value = name;
    form.phone.value = `(${area}) 555-${String(100 + n).padStart(4, "0")}`;
    form.email.value = `${name.toLowerCase().replace(/[^a-z]+/g, ".")}@example.com`;
    form.message.value = message;
  }

  function selectTab(id) {
    ["phones", "email", "new", "calendar"].forEach((name) => {
      const tab = $(`#tab-${name}`);
      const panel = $(`#${name}-panel`);
      tab.setAttribute("aria-selected", String(name === id));
      tab.tabIndex = name === id ? 0 : -1;
      panel.hidden = name !== id;
    });
  }

  function showView(name) {
    view = name;
    document.querySelectorAll("[data-view]").forEach((b) => b.toggleAttribute("aria-current",
      b.dataset.view === name && (!b.dataset.channel || b.dataset.channel === channel)));
    $("#channel-view").hidden = name !== "channel";
    $("#home-view").hidden = name !== "home";
    if (name === "home") post("/sandbox/api/slack/home", { user: me });
  }

  function wire() {
    document.querySelectorAll("[data-speed]").forEach((button) => button.addEventListener("click", () =>
      post("/sandbox/api/clock", { speed: button.dataset.speed })));
    $("#skip-next").addEventListener("click", () => post("/sandbox/api/clock", { skip: "next" }));
    $("#skip-day").addEventListener("click", () => post("/sandbox/api/clock", { skip_seconds: 86400 }));
    $("#who").addEventListener("change", (event) => {
      me = event.target.value;
      localStorage.setItem(USER_KEY, me);
      shownModal = "";
      channel = "";  // their own first channel
      openThreadTs = null;
      if (view === "home") post("/sandbox/api/slack/home", { user: me }); else load();
    });
    document.querySelectorAll("[data-view=home]").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
    $("#command-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("#command");
      const text = input.value.trim();
      if (!text) return;
      input.value = ""; // cleared at once, as Slack does; put back if it did not go
      const answer = await post("/sandbox/api/slack/command", { user: me, text, channel: state.channel.id });
      if (!answer.ok && !input.value) input.value = text;
    });
    $("#thread-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("#thread-text");
      const text = input.value;
      if (!text.trim() || !openThreadTs) return;
      input.value = "";
      const answer = await post("/sandbox/api/slack/thread", { user: me, channel: state.channel.id, thread_ts: openThreadTs, text });
      if (!answer.ok && !input.value) input.value = text;
    });
    $("#thread-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("#thread-form").requestSubmit(); }
    });
    $("#thread-close").addEventListener("click", () => { openThreadTs = null; renderThread(); });
    $("#phone-pick").addEventListener("change", (event) => { phoneNumber = event.target.value; renderPhones(); });
    $("#sms-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("#sms-text");
      if (!input.value.trim() || !phoneNumber) return;
      const body = input.value;
      input.value = "";
      const talk = conversationOn(state.phones.find((p) => p.number === phoneNumber));
      const answer = await post("/sandbox/api/sms", { number: phoneNumber, body, to: talk ? talk.clinic_number : "" });
      if (!answer.ok && !input.value) input.value = body;
    });
    document.querySelectorAll(".chip").forEach((chip) => chip.addEventListener("click", () => {
      const talk = phoneNumber && conversationOn(state.phones.find((p) => p.number === phoneNumber));
      if (talk) post("/sandbox/api/sms", { number: phoneNumber, body: chip.dataset.say, to: talk.clinic_number });
    }));
    ["phones", "email", "new", "calendar"].forEach((name) => $(`#tab-${name}`).addEventListener("click", () => selectTab(name)));
    $(".tabs").addEventListener("keydown", (event) => {
      const order = ["phones", "email", "new", "calendar"];
      const current = order.findIndex((name) => $(`#tab-${name}`).getAttribute("aria-selected") === "true");
      const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = order[(current + step + order.length) % order.length];
      selectTab(next);
      $(`#tab-${next}`).focus();
    });
    $("#sample-lead").addEventListener("click", fillSample);
    $("#lead-clinic").addEventListener("change", (event) => { leadClinic = event.target.value; renderLeadForm(); fillSample(); });
    $("#calendar-clinic").addEventListener("change", (event) => { calendarClinic = event.target.value; renderCalendar(); });
    $("#calendar-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.target;
      calendarAction({ action: "book", lead_id: form.lead_id.value, date: form.date.value, time: form.time.value });
    });
    $("#lead-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      const fields = Object.fromEntries(new FormData(form).entries());
      const result = $("#lead-result");
      const answer = await post("/sandbox/api/lead", fields);
      if (answer.ok) {
        const clinic = clinicOf(fields.clinic) || state.business;
        result.textContent = `Lead #${answer.answer.lead_id} ${answer.answer.created ? "sent" : "was already known"} to ${clinic.name}. Watch the phone and #${clinic.channel.name}.`;
        result.className = "result good";
        const phone = (fields.phone || "").replace(/\D/g, "");
        await load();
        const match = state.phones.find((p) => p.number.replace(/\D/g, "").endsWith(phone.slice(-10)) && phone);
        if (match) { phoneNumber = match.number; talkingTo.set(match.number, clinic.phone); selectTab("phones"); renderPhones(); }
        fillSample();
      } else {
        const reasons = answer.answer && answer.answer.reasons;
        result.textContent = reasons ? reasons.join("; ") : (answer.error || "The bot refused the lead");
        result.className = "result bad";
      }
    });
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      if (state && state.modal) closeModal();
      else if (openThreadTs) { openThreadTs = null; renderThread(); }
    });
    setInterval(tick, 250);
  }

  wire();
  load().then(() => { fillSample(); });
  listen();

  return { confirmDialog, load };
})();
