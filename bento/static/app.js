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
  const audience = new Set(); // facets derived from the interaction log (popularity, rating): shown in words

  // Word the page after the catalogue: "films" / "products" / "items", its facets and an example request.
  async function wordThePage() {
    try {
      const resp = await fetch("catalogue");
      if (!resp.ok) return;
      const cat = await resp.json();
      const [noun, nouns] = cat.item_noun;
      cat.facets.filter((f) => f.kind === "audience").forEach((f) => audience.add(f.name));
      const facets = cat.facets.filter((f) => f.name !== "ratings").map((f) => f.name);
      const category = cat.facets.find((f) => f.kind === "category" && f.values && f.values.length);
      const year = cat.facets.find((f) => f.kind === "year");
      document.title = "sessionflow — " + nouns;
      $("tagline").textContent = "tell me what " + nouns + " you are looking for";
      $("greeting").textContent =
        "Hi! Describe the " + noun + " you want" + (facets.length ? " (" + facets.join(", ") + ")" : "") +
        ", in your own words, or name one you liked, and I will suggest some. " +
        "Use Like / Dislike on the cards to steer me.";
      const first = category ? category.values[0].toLowerCase() + " " + noun : noun;
      let example = "e.g. " + (/^[aeiou]/.test(first) ? "an " : "a ") + first;
      if (year && year.bounds) example += " from the " + (Math.floor(year.bounds[1] / 10) * 10 - 10) + "s";
      input.placeholder = example;
    } catch (e) {
      // the generic wording stays
    }
  }

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
      const byFacet = new Map();
      (state.constraints || []).forEach((c) => {
        const key = c.facet === "title" ? "Not titled" : c.facet.charAt(0).toUpperCase() + c.facet.slice(1);
        const num = (x) => String(Math.round(x * 100) / 100);
        const range = c.ranges && c.ranges.length ? c.ranges.map((r) => num(r[0]) + "–" + num(r[1])).join(" or ")
          : c.low != null && c.high != null ? num(c.low) + "–" + num(c.high)
          : c.low != null ? num(c.low) + " or more" : c.high != null ? "up to " + num(c.high) : c.said;
        const text = audience.has(c.facet) && c.said ? c.said // "hidden gem", not "up to 90"
          : c.op === "is" || (c.op === "prefer" && c.value != null) ? c.value
          : c.op === "is_not" ? "not " + c.value
          : c.op === "not_between" ? "not " + range : range;
        byFacet.set(key, (byFacet.get(key) || []).concat([text]));
      });
      byFacet.forEach((values, key) => facts.push([key, values.join(", ")]));
      if (state.mood) facts.push(["Mood", state.mood]);
      if (state.soft && state.soft.length) facts.push(["Asked for", state.soft.slice(-2).join("; ")]);
      if (state.liked && state.liked.length) facts.push(["Liked", state.liked.map(name).join(", ")]);
      if (state.disliked && state.disliked.length) facts.push(["Disliked", state.disliked.map(name).join(", ")]);
      if (state.seen && state.seen.length) facts.push(["Seen", String(state.seen.length)]);
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
      ((data.understood && data.understood.refs) || []).forEach((r) => titles.set(r.item_id, r.title));
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
  wordThePage();
  input.focus();
})();
