// sessionflow chat page: POST chat / feedback / reset on the same origin; plain DOM, no build step.
// Every text from the server is set with textContent (never innerHTML).
(function () {
  "use strict";

  const K = 8;
  const $ = (id) => document.getElementById(id);
  const log = $("chat-log");
  const form = $("chat-form");
  const input = $("message");
  const send = $("send");
  const results = $("results");
  const empty = $("empty");
  const statusLine = $("status");
  const memory = $("memory");
  const memoryList = $("memory-list");
  const template = $("card-template");

  function newSessionId() {
    if (window.crypto && crypto.randomUUID) return "web-" + crypto.randomUUID();
    return "web-" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  let sessionId = sessionStorage.getItem("sessionflow-session") || newSessionId();
  sessionStorage.setItem("sessionflow-session", sessionId);
  const titles = new Map(); // item_id -> title, for the "what I know" panel

  async function post(route, body) {
    const resp = await fetch(route, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      throw new Error(errorText(data, resp.status));
    }
    return data;
  }

  function errorText(data, status) {
    if (data && Array.isArray(data.detail) && data.detail.length) {
      return data.detail.map((d) => (d.loc && d.loc.length ? d.loc.join(".") + ": " : "") + d.msg).join("; ");
    }
    if (Array.isArray(data) && data.length && data[0].error) return data[0].error;
    if (data && data.error) return data.error;
    return "request failed (HTTP " + status + ")";
  }

  function setStatus(text, isError) {
    statusLine.textContent = text || "";
    statusLine.classList.toggle("error", Boolean(isError));
  }

  function addBubble(role, text) {
    const li = document.createElement("li");
    li.className = "bubble " + role;
    li.textContent = text;
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }

  function renderItems(items) {
    results.replaceChildren();
    items.forEach((item, n) => {
      titles.set(item.item_id, item.title);
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.itemId = item.item_id;
      card.id = "item-" + item.item_id;
      card.querySelector(".rank").textContent = String(n + 1);
      card.querySelector(".title").textContent = item.title;
      card.querySelector(".reason").textContent = item.reason || "";
      card.querySelector(".score").textContent = "score " + Number(item.score).toFixed(3);
      const like = card.querySelector(".like");
      const dislike = card.querySelector(".dislike");
      like.setAttribute("aria-label", "Like " + item.title);
      dislike.setAttribute("aria-label", "Dislike " + item.title);
      like.addEventListener("click", () => react(item, "like", card));
      dislike.addEventListener("click", () => react(item, "dislike", card));
      results.appendChild(card);
    });
    empty.hidden = items.length > 0;
    results.setAttribute("aria-busy", "false");
  }

  function renderMemory(state) {
    const facts = [];
    const name = (id) => titles.get(id) || "item " + id;
    if (state) {
      if (state.accepted_categories && state.accepted_categories.length)
        facts.push(["Genres", state.accepted_categories.join(", ")]);
      if (state.rejected_categories && state.rejected_categories.length)
        facts.push(["Not", state.rejected_categories.join(", ")]);
      if (state.year_min != null || state.year_max != null)
        facts.push(["Years", (state.year_min ?? "…") + "–" + (state.year_max ?? "…")]);
      if (state.liked && state.liked.length) facts.push(["Liked", state.liked.map(name).join(", ")]);
      if (state.disliked && state.disliked.length) facts.push(["Disliked", state.disliked.map(name).join(", ")]);
    }
    memoryList.replaceChildren();
    facts.forEach(([key, value]) => {
      const li = document.createElement("li");
      const b = document.createElement("strong");
      b.textContent = key + ": ";
      li.appendChild(b);
      li.appendChild(document.createTextNode(value));
      memoryList.appendChild(li);
    });
    memory.hidden = facts.length === 0;
  }

  function busy(on) {
    send.disabled = on;
    document.querySelectorAll(".card button").forEach((b) => (b.disabled = on));
    results.setAttribute("aria-busy", on ? "true" : "false");
  }

  async function sendMessage(text) {
    addBubble("user", text);
    busy(true);
    setStatus("Thinking…");
    try {
      const data = await post("chat", { session_id: sessionId, message: text, k: K });
      addBubble("assistant", data.reply);
      renderItems(data.items);
      renderMemory(data.state);
      setStatus("");
    } catch (err) {
      setStatus(err.message, true);
    } finally {
      busy(false);
      input.focus();
    }
  }

  async function react(item, event, card) {
    busy(true);
    card.classList.add(event === "like" ? "liked" : "disliked");
    try {
      const data = await post("feedback", { session_id: sessionId, item_id: item.item_id, event: event });
      renderItems(data.items);
      renderMemory(data.state);
      setStatus((event === "like" ? "Liked " : "Disliked ") + item.title + " — list updated.");
    } catch (err) {
      card.classList.remove("liked", "disliked");
      setStatus(err.message, true);
    } finally {
      busy(false);
    }
  }

  async function startOver() {
    try {
      await post("reset", { session_id: sessionId });
    } catch (err) {
      // a fresh session id below starts over anyway
    }
    sessionId = newSessionId();
    sessionStorage.setItem("sessionflow-session", sessionId);
    log.replaceChildren(log.firstElementChild);
    renderItems([]);
    renderMemory(null);
    setStatus("Started over.");
    input.value = "";
    input.focus();
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    sendMessage(text);
  });
  $("start-over").addEventListener("click", startOver);
  input.focus();
})();
