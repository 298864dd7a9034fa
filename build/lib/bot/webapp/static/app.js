// The Mini App page: the member's card and the till. Every call signs in with Telegram's
// initData (Authorization: tma <initData>); the API decides what this user may see and do.
(function () {
  "use strict";
  var tg = (window.Telegram && window.Telegram.WebApp) || null;
  var boot = JSON.parse(document.getElementById("boot-texts").textContent);
  var texts = boot[pickLanguage()] || boot.en;
  var session = null;
  var qrTimer = null;
  var member = null;
  var purchaseId = null;
  var capTimer = null;

  function pickLanguage() {
    var user = tg && tg.initDataUnsafe && tg.initDataUnsafe.user;
    var code = ((user && user.language_code) || navigator.language || "en").toLowerCase();
    var language = code.split(/[-_]/)[0];
    if (language === "be" || language === "kk") return "ru";
    return language;
  }

  function t(key, values) {
    var text = texts[key] || texts.failed || key;
    Object.keys(values || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(values[name]));
    });
    return text;
  }

  function $(id) { return document.getElementById(id); }

  function applyTexts() {
    document.querySelectorAll("[data-text]").forEach(function (element) {
      element.textContent = t(element.getAttribute("data-text"));
    });
    document.querySelectorAll("[data-placeholder]").forEach(function (element) {
      element.setAttribute("placeholder", t(element.getAttribute("data-placeholder")));
    });
  }

  function applyTheme() {
    var params = (tg && tg.themeParams) || {};
    Object.keys(params).forEach(function (key) {
      document.documentElement.style.setProperty(
        "--tg-theme-" + key.replace(/_/g, "-"), params[key]);
    });
  }

  function status(text) { $("status").textContent = text || ""; }

  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }

  function api(method, path, body) {
    var headers = { "Authorization": "tma " + ((tg && tg.initData) || "") };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch("api/" + path, {
      method: method, headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) {
          var error = (data && data.error) || {};
          throw new ApiError(response.status, error.code || "failed", error.message || "");
        }
        return data;
      });
    });
  }

  function explain(error) {
    if (error instanceof ApiError) {
      if (error.status === 401) return t("unauthorized");
      if (error.status === 429) return t("too_many");
      if (error.status === 403) return t("forbidden");
      if (texts[error.code]) return t(error.code);
    }
    return t("failed");
  }

  function fail(error) {
    status(explain(error));
    document.body.setAttribute("data-state", error && error.status === 401 ? "unauthorized" : "error");
  }

  // ---- the member's card ------------------------------------------------------------------

  function showCustomer() {
    $("till").hidden = true;
    $("customer").hidden = false;
    $("to-till").hidden = !session.cashier;
    return Promise.all([loadMe(), loadQr(), loadHistory(null), loadReminders(), recordZone()]);
  }

  function loadMe() {
    return api("GET", "me").then(function (me) {
      $("card-number").textContent = me.card_display;
      $("available").textContent = me.available_text;
      $("available").setAttribute("data-points", me.available);
      $("balance").innerHTML = me.balance_html;  // the bot's own template, escaped server-side
      $("tier-bar").hidden = me.tier_progress === null;
      $("tier-fill").style.width = Math.round((me.tier_progress || 0) * 100) + "%";
    });
  }

  function loadQr() {
    clearInterval(qrTimer);
    return api("GET", "me/qr").then(function (code) {
      var image = $("qr");
      image.src = code.svg;
      image.setAttribute("data-code", code.text);
      var left = code.expires_in;
      var tick = function () {
        $("qr-timer").textContent = t("qr_refresh", { seconds: Math.max(left, 0) });
        if (left <= 3) { clearInterval(qrTimer); loadQr().catch(fail); }
        left -= 1;
      };
      tick();
      qrTimer = setInterval(tick, 1000);
    });
  }

  function loadHistory(before) {
    return api("GET", "me/history" + (before ? "?before=" + before : "")).then(function (page) {
      var part = document.createElement("div");
      part.className = "history-page";
      part.innerHTML = page.html;
      $("history").appendChild(part);
      var more = $("more");
      more.hidden = !page.next_before;
      more.onclick = function () { more.hidden = true; loadHistory(page.next_before).catch(fail); };
    });
  }

  function showReminders(answer) {
    $("reminders").innerHTML = answer.html;
    $("reminder-notice").textContent = answer.notice ? t(answer.notice) : "";
    var buttons = $("reminder-buttons");
    buttons.textContent = "";
    answer.items.forEach(function (item) {
      var button = document.createElement("button");
      button.className = "secondary";
      button.textContent = t("cancel_reminder", { name: item.name });
      button.onclick = function () {
        button.disabled = true;
        api("POST", "me/reminders/" + item.id + "/cancel").then(showReminders).catch(fail);
      };
      buttons.appendChild(button);
    });
  }

  function loadReminders() { return api("GET", "me/reminders").then(showReminders); }

  function recordZone() {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    if (!zone) return Promise.resolve();
    return api("PUT", "me/time-zone", { zone: zone }).catch(function () { /* not vital */ });
  }

  // ---- the till -----------------------------------------------------------------------------

  function newPurchaseId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  function tillError(error) { $("till-error").textContent = error ? explain(error) : ""; }

  function showTill() {
    clearInterval(qrTimer);
    $("customer").hidden = true;
    $("till").hidden = false;
    $("to-card").hidden = !session.member;
  }

  function showMember(found) {
    member = found;
    purchaseId = newPurchaseId();
    $("member").hidden = false;
    $("m-name").textContent = found.name || "—";
    $("m-card").textContent = found.card_display;
    $("m-tier").textContent = found.tier_text;
    $("m-available").textContent = found.available_text;
    $("receipt").textContent = "";
    $("record").disabled = false;
    $("next").hidden = true;
    $("redeem").disabled = !found.can_redeem;
    if (!found.can_redeem) $("redeem").value = "0";
    showCap(found);
  }

  function showCap(found) {
    if (!found.can_redeem) { $("cap").textContent = t("redeem_needs_qr"); return; }
    $("cap").textContent = found.redeemable_text ? t("redeem_cap", { points: found.redeemable_text }) : "";
  }

  function totalValue() { return $("total").value.trim().replace(",", "."); }

  function refreshCap() {
    clearTimeout(capTimer);
    if (!member || !totalValue()) return;
    capTimer = setTimeout(function () {
      api("POST", "till/lookup", { customer_id: member.customer_id, visit: member.visit, total: totalValue() })
        .then(function (found) { member = found; showCap(found); tillError(null); })
        .catch(tillError);
    }, 300);
  }

  function scanned(text) {
    tillError(null);
    api("POST", "till/scan", { qr: text }).then(showMember).catch(tillError);
    return true;  // closes the scanner
  }

  function bindTill() {
    $("scan").onclick = function () {
      if (tg && tg.showScanQrPopup) tg.showScanQrPopup({ text: t("scan") }, scanned);
    };
    $("lookup").onsubmit = function (event) {
      event.preventDefault();
      tillError(null);
      api("POST", "till/lookup", { ref: $("ref").value.trim() }).then(showMember).catch(tillError);
    };
    $("total").oninput = refreshCap;
    $("purchase").onsubmit = function (event) {
      event.preventDefault();
      if (!member || $("record").disabled) return;
      $("record").disabled = true;  // one tap, one purchase (the id makes a retry a replay)
      tillError(null);
      api("POST", "till/purchases", {
        id: purchaseId, customer_id: member.customer_id, total: totalValue(),
        redeem: parseInt($("redeem").value || "0", 10) || 0, visit: member.visit,
      }).then(function (receipt) {
        $("receipt").textContent = t("recorded", {
          earned: receipt.earned_text, spent: receipt.spent_text, available: receipt.available_text,
        });
        $("m-available").textContent = receipt.available_text;
        $("next").hidden = false;
        if (tg && tg.HapticFeedback) tg.HapticFeedback.notificationOccurred("success");
      }).catch(function (error) { $("record").disabled = false; tillError(error); });
    };
    $("next").onclick = function () {
      member = null;
      $("member").hidden = true;
      $("total").value = "";
      $("redeem").value = "0";
      $("ref").value = "";
    };
    $("to-till").onclick = showTill;
    $("to-card").onclick = function () { showCustomer().catch(fail); };
  }

  // ---- start ---------------------------------------------------------------------------------

  function start() {
    applyTheme();
    applyTexts();
    status(t("loading"));
    if (tg) { tg.ready(); tg.expand(); }
    bindTill();
    api("GET", "session").then(function (answer) {
      session = answer;
      texts = answer.texts;
      document.documentElement.lang = answer.locale;
      applyTexts();
      status("");
      if (answer.cashier && !answer.member) { showTill(); return null; }
      if (answer.member) return showCustomer();
      status(t("not_member"));
      return null;
    }).then(function () {
      document.body.setAttribute("data-state", "ready");
    }).catch(fail);
  }

  start();
})();
