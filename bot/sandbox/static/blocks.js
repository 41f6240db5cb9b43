// Block Kit as Slack draws it: messages, modals and the Home tab, from the exact blocks the bot sent.
"use strict";

const Blocks = (() => {
  const h = (tag, attrs = {}, children = []) => {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "html") el.innerHTML = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children)) {
      if (child == null) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  };

  function text(obj, people) {
    if (!obj) return h("span");
    if (obj.type === "mrkdwn") return h("span", { class: "mrkdwn", html: Mrkdwn.toHtml(obj.text, people) });
    return h("span", { class: "plain", html: Mrkdwn.plain(obj.text) });
  }

  const plainText = (obj) => (obj && obj.text) || "";

  // ctx: { people(id) -> name, act(element, blockId, extra) , surface: "message"|"modal"|"home", values }
  function render(blocks, ctx) {
    const root = h("div", { class: "blocks" });
    (blocks || []).forEach((block, index) => {
      const blockId = block.block_id || `b${index}`;
      root.append(renderBlock(block, blockId, ctx));
    });
    return root;
  }

  function renderBlock(block, blockId, ctx) {
    switch (block.type) {
      case "header":
        return h("div", { class: "bk-header", role: "heading", "aria-level": "3" }, text(block.text, ctx.people));
      case "section": {
        const el = h("div", { class: "bk-section" });
        const body = h("div", { class: "bk-section-body" });
        if (block.text) body.append(h("div", { class: "bk-text" }, text(block.text, ctx.people)));
        if (block.fields) {
          body.append(h("div", { class: "bk-fields" }, block.fields.map((f) => h("div", { class: "bk-field" }, text(f, ctx.people)))));
        }
        el.append(body);
        if (block.accessory) el.append(h("div", { class: "bk-accessory" }, element(block.accessory, blockId, ctx)));
        return el;
      }
      case "context":
        return h("div", { class: "bk-context" }, (block.elements || []).map((e) =>
          e.type === "image" ? h("span", { class: "bk-img-alt", text: `[${e.alt_text || "image"}]` }) : text(e, ctx.people)));
      case "divider":
        return h("hr", { class: "bk-divider" });
      case "actions":
        return h("div", { class: "bk-actions" }, (block.elements || []).map((e) => element(e, blockId, ctx)));
      case "input":
        return input(block, blockId, ctx);
      case "image":
        return h("div", { class: "bk-image" }, [block.title ? text(block.title, ctx.people) : null,
          h("span", { class: "bk-img-alt", text: `[image: ${block.alt_text || ""}]` })]);
      case "rich_text":
        return h("div", { class: "bk-text" }, richText(block.elements || []));
      default:
        return h("div", { class: "bk-unknown", text: `(a "${block.type}" block, which the sandbox does not draw)` });
    }
  }

  function richText(elements) {
    return elements.map((section) => h(section.type === "rich_text_quote" ? "blockquote" : "div", {},
      (section.elements || []).map((piece) => {
        if (piece.type === "text") return piece.style && piece.style.bold ? h("b", { text: piece.text }) : piece.text;
        if (piece.type === "link") return h("a", { href: piece.url, target: "_blank", rel: "noopener", text: piece.text || piece.url });
        if (piece.type === "user") return h("span", { class: "mention", text: `@${piece.user_id}` });
        if (piece.type === "emoji") return Mrkdwn.toHtml(`:${piece.name}:`);
        return "";
      })));
  }

  function option(o) {
    return { text: o.text, value: o.value, ...(o.description ? { description: o.description } : {}) };
  }

  function allOptions(el) {
    if (el.options) return el.options;
    return (el.option_groups || []).flatMap((g) => g.options || []);
  }

  function confirmThen(el, run) {
    if (!el.confirm) return run();
    Sandbox.confirmDialog(el.confirm).then((yes) => { if (yes) run(); });
  }

  // An interactive element in a message, the Home tab, or a modal's section/actions block.
  function element(el, blockId, ctx) {
    switch (el.type) {
      case "button": {
        const cls = ["bk-button", el.style === "primary" ? "primary" : "", el.style === "danger" ? "danger" : ""].join(" ");
        if (el.url) {
          return h("a", { class: cls, href: el.url, target: "_blank", rel: "noopener noreferrer", html: Mrkdwn.plain(plainText(el.text)) });
        }
        return h("button", {
          type: "button", class: cls, "data-action-id": el.action_id, html: Mrkdwn.plain(plainText(el.text)),
          onclick: (event) => {
            const button = event.currentTarget;
            confirmThen(el, () => ctx.act({ type: "button", action_id: el.action_id, text: el.text, value: el.value ?? "" },
              blockId, button));
          },
        });
      }
      case "overflow": {
        const select = h("select", { class: "bk-overflow", "aria-label": "More actions", "data-action-id": el.action_id },
          [h("option", { value: "", text: "⋯" }), ...allOptions(el).map((o, i) => h("option", { value: String(i), text: plainText(o.text) }))]);
        select.addEventListener("change", () => {
          const chosen = allOptions(el)[Number(select.value)];
          select.value = "";
          if (chosen) confirmThen(el, () => ctx.act({ type: "overflow", action_id: el.action_id, selected_option: option(chosen) }, blockId, select));
        });
        return select;
      }
      case "static_select":
      case "external_select":
      case "users_select":
      case "conversations_select":
      case "channels_select": {
        const options = el.type === "static_select" ? allOptions(el) : (el.type === "users_select" ? ctx.team.map((m) => ({ text: { type: "plain_text", text: m.real_name }, value: m.id })) : []);
        const select = h("select", { class: "bk-select", "aria-label": plainText(el.placeholder) || "Choose", "data-action-id": el.action_id },
          [h("option", { value: "", text: plainText(el.placeholder) || "Choose…" }), ...options.map((o, i) => h("option", { value: String(i), text: plainText(o.text) }))]);
        select.addEventListener("change", () => {
          const chosen = options[Number(select.value)];
          if (!chosen) return;
          const action = el.type === "users_select"
            ? { type: el.type, action_id: el.action_id, selected_user: chosen.value }
            : { type: el.type, action_id: el.action_id, selected_option: option(chosen) };
          confirmThen(el, () => ctx.act(action, blockId, select));
        });
        return select;
      }
      case "datepicker":
      case "timepicker":
      case "datetimepicker":
      case "checkboxes":
      case "radio_buttons":
        return field(el, blockId, { ...ctx, onChange: (value) => ctx.act({ type: el.type, action_id: el.action_id, ...value }, blockId) });
      case "image":
        return h("span", { class: "bk-img-alt", text: `[${el.alt_text || "image"}]` });
      default:
        return h("span", { class: "bk-unknown", text: `(${el.type})` });
    }
  }

  // --- modal inputs: each reads back as Slack's state.values entry ---------------------------------

  const fieldReaders = new WeakMap();

  function field(el, blockId, ctx) {
    const id = `f-${blockId}-${el.action_id}`.replace(/[^a-zA-Z0-9_-]/g, "_");
    let control;
    let read;
    let write = () => {};  // puts back what read() gave: a modal redrawn after an error keeps every value
    switch (el.type) {
      case "plain_text_input":
      case "email_text_input":
      case "url_text_input":
      case "number_input": {
        const type = { email_text_input: "email", url_text_input: "url", number_input: "number" }[el.type] || "text";
        control = el.multiline
          ? h("textarea", { id, rows: 4, maxlength: el.max_length, placeholder: plainText(el.placeholder) })
          : h("input", { id, type, maxlength: el.max_length, placeholder: plainText(el.placeholder) });
        control.value = el.initial_value ?? "";
        read = () => ({ type: el.type, value: control.value === "" ? null : control.value });
        write = (v) => { if (v.value != null) control.value = v.value; };
        break;
      }
      case "static_select":
      case "external_select": {
        const options = allOptions(el);
        control = h("select", { id }, [h("option", { value: "", text: plainText(el.placeholder) || "Choose…" }),
          ...options.map((o, i) => h("option", { value: String(i), text: plainText(o.text) }))]);
        const initial = el.initial_option ? options.findIndex((o) => o.value === el.initial_option.value) : -1;
        control.value = initial >= 0 ? String(initial) : "";
        read = () => ({ type: el.type, selected_option: control.value === "" ? null : option(options[Number(control.value)]) });
        write = (v) => {
          const at = v.selected_option ? options.findIndex((o) => o.value === v.selected_option.value) : -1;
          if (at >= 0) control.value = String(at);
        };
        break;
      }
      case "users_select": {
        control = h("select", { id }, [h("option", { value: "", text: "Choose a person" }),
          ...ctx.team.map((m) => h("option", { value: m.id, text: m.real_name }))]);
        control.value = el.initial_user || "";
        read = () => ({ type: el.type, selected_user: control.value || null });
        write = (v) => { if (v.selected_user) control.value = v.selected_user; };
        break;
      }
      case "radio_buttons":
      case "checkboxes": {
        const kind = el.type === "radio_buttons" ? "radio" : "checkbox";
        const initial = el.type === "radio_buttons" ? [el.initial_option].filter(Boolean) : (el.initial_options || []);
        const boxes = (el.options || []).map((o, i) => {
          const box = h("input", { type: kind, name: id, id: `${id}-${i}`, value: String(i) });
          box.checked = initial.some((x) => x.value === o.value);
          return { box, o, label: h("label", { class: "choice", for: `${id}-${i}` }, [box, h("span", { html: o.text.type === "mrkdwn" ? Mrkdwn.toHtml(o.text.text) : Mrkdwn.plain(o.text.text) })]) };
        });
        control = h("div", { id, class: "choices", role: kind === "radio" ? "radiogroup" : "group" }, boxes.map((b) => b.label));
        read = () => {
          const chosen = boxes.filter((b) => b.box.checked).map((b) => option(b.o));
          return el.type === "radio_buttons" ? { type: el.type, selected_option: chosen[0] || null } : { type: el.type, selected_options: chosen };
        };
        write = (v) => {
          const picked = el.type === "radio_buttons" ? [v.selected_option].filter(Boolean) : (v.selected_options || []);
          if (el.type === "radio_buttons" && !picked.length) return;
          boxes.forEach((b) => { b.box.checked = picked.some((x) => x.value === b.o.value); });
        };
        break;
      }
      case "datepicker":
        control = h("input", { id, type: "date" });
        control.value = el.initial_date || "";
        read = () => ({ type: el.type, selected_date: control.value || null });
        write = (v) => { if (v.selected_date) control.value = v.selected_date; };
        break;
      case "timepicker":
        control = h("input", { id, type: "time" });
        control.value = el.initial_time || "";
        read = () => ({ type: el.type, selected_time: control.value || null, ...(el.timezone ? { timezone: el.timezone } : {}) });
        write = (v) => { if (v.selected_time) control.value = v.selected_time; };
        break;
      case "datetimepicker": {
        control = h("input", { id, type: "datetime-local" });
        if (el.initial_date_time) control.value = toLocalInput(el.initial_date_time, ctx.timezone);
        read = () => ({ type: el.type, selected_date_time: control.value ? fromLocalInput(control.value, ctx.timezone) : null });
        write = (v) => { if (v.selected_date_time) control.value = toLocalInput(v.selected_date_time, ctx.timezone); };
        break;
      }
      default:
        control = h("span", { class: "bk-unknown", text: `(${el.type} input)` });
        read = () => ({ type: el.type });
    }
    if (ctx.onChange) control.addEventListener("change", () => ctx.onChange(read()));
    if (el.focus_on_load) control.setAttribute("data-autofocus", "");
    control.dataset.blockId = blockId;
    control.dataset.actionId = el.action_id;
    fieldReaders.set(control, { blockId, actionId: el.action_id, read, write });
    control.classList.add("bk-field-control");
    return control;
  }

  // Slack shows datetimepicker times in the viewer's zone; the sandbox uses the business's, like the team's Slack.
  function toLocalInput(epoch, zone) {
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(new Date(epoch * 1000));
    const get = (t) => parts.find((p) => p.type === t).value;
    return `${get("year")}-${get("month")}-${get("day")}T${get("hour")}:${get("minute")}`;
  }

  function fromLocalInput(value, zone) {
    // Find the epoch whose wall time in `zone` is `value` (two passes settle any offset change).
    const [date, time] = value.split("T");
    const [y, mo, d] = date.split("-").map(Number);
    const [hh, mm] = time.split(":").map(Number);
    const wanted = Date.UTC(y, mo - 1, d, hh, mm) / 1000;
    let guess = wanted;
    for (let i = 0; i < 2; i++) {
      const shown = toLocalInput(guess, zone);
      const [sd, st] = shown.split("T");
      const [sy, smo, sdd] = sd.split("-").map(Number);
      const [sh, sm] = st.split(":").map(Number);
      guess += wanted - Date.UTC(sy, smo - 1, sdd, sh, sm) / 1000;
    }
    return guess;
  }

  function input(block, blockId, ctx) {
    const control = field(block.element || {}, blockId, { ...ctx, onChange: block.dispatch_action ? (value) => ctx.act({ ...value, action_id: block.element.action_id }, blockId) : null });
    const labelText = plainText(block.label) + (block.optional ? " (optional)" : "");
    const label = h("label", { class: "bk-label", for: control.id || null, html: Mrkdwn.plain(labelText) });
    const error = ctx.errors && ctx.errors[blockId];
    return h("div", { class: `bk-input${error ? " has-error" : ""}`, "data-block-id": blockId, "data-optional": block.optional ? "true" : "false" }, [
      label, control,
      block.hint ? h("div", { class: "bk-hint", html: Mrkdwn.plain(plainText(block.hint)) }) : null,
      error ? h("div", { class: "bk-error", role: "alert", text: error }) : null,
    ]);
  }

  // state.values for every input under root, as Slack sends them with view_submission.
  function values(root) {
    const result = {};
    root.querySelectorAll(".bk-field-control").forEach((control) => {
      const reader = fieldReaders.get(control);
      if (!reader) return;
      result[reader.blockId] = result[reader.blockId] || {};
      result[reader.blockId][reader.actionId] = reader.read();
    });
    return result;
  }

  // Put back values read from an earlier drawing of the same modal (what the person chose or typed).
  function restore(root, kept) {
    root.querySelectorAll(".bk-field-control").forEach((control) => {
      const reader = fieldReaders.get(control);
      const value = reader && (kept[reader.blockId] || {})[reader.actionId];
      if (value) reader.write(value);
    });
  }

  // Slack's client refuses to submit a modal with a required input left empty, and says so under it.
  function missingRequired(root) {
    const state = values(root);
    const missing = [];
    root.querySelectorAll('.bk-input[data-optional="false"]').forEach((box) => {
      const entries = Object.values(state[box.dataset.blockId] || {});
      const filled = entries.some((v) => [v.value, v.selected_option, v.selected_date, v.selected_time,
        v.selected_date_time, v.selected_user].some((x) => x != null && x !== "") || (v.selected_options || []).length);
      if (!filled) missing.push(box.dataset.blockId);
    });
    return missing;
  }

  return { render, values, restore, missingRequired, h, text, plainText };
})();
