// The rater's listening page. State lives on the server: every load asks for the next unanswered
// trial, so closing the tab and opening the link again resumes where the rater left off. A vote
// unlocks only after every sample has played to its end; the server checks this again.
(function () {
  "use strict";
  var app = document.getElementById("app");
  if (!app) return;
  var base = app.getAttribute("data-base");
  var el = function (id) { return document.getElementById(id); };
  var current = null;   // {trial, players: {side: {audio, plays, listened, ended}}, shownAt}
  var sending = false;

  function showError(msg) { var e = el("error"); e.textContent = msg; e.hidden = false; }
  function clearError() { el("error").hidden = true; }

  function button(text, id, cls) {
    var b = document.createElement("button");
    b.type = "button"; b.textContent = text; b.id = id; if (cls) b.className = cls;
    return b;
  }

  function stopOthers(except) {
    Object.keys(current.players).forEach(function (k) {
      var p = current.players[k];
      if (p.audio !== except && !p.audio.paused) p.audio.pause();
    });
    if (current.reference && current.reference !== except && !current.reference.paused) current.reference.pause();
  }

  function allHeard() {
    return Object.keys(current.players).every(function (k) { return current.players[k].ended; });
  }

  function refreshAnswers() {
    var ready = allHeard() && !sending;
    Array.prototype.forEach.call(el("answers").querySelectorAll("button"), function (b) { b.disabled = !ready; });
    el("hint").textContent = allHeard() ? "" :
      (Object.keys(current.players).length > 1 ? "Play both samples to the end to answer." :
                                                 "Play the sample to the end to answer.");
  }

  function makePlayer(stim) {
    var box = document.createElement("div"); box.className = "player";
    var audio = new Audio(stim.url); audio.preload = "auto";
    var p = {audio: audio, plays: 0, listened: 0, ended: false, last: 0, duration: stim.duration};
    var label = stim.side;
    var b = button("\u25B6 Play " + label, "play-" + label);
    var meter = document.createElement("div"); meter.className = "meter";
    var fill = document.createElement("div"); meter.appendChild(fill);
    b.addEventListener("click", function () {
      stopOthers(audio);
      if (audio.ended || audio.currentTime >= (audio.duration || stim.duration) - 0.01) audio.currentTime = 0;
      p.last = audio.currentTime;
      var started = audio.play();
      if (started && started.catch) started.catch(function (err) { showError("Playback failed: " + err.message); });
    });
    audio.addEventListener("play", function () { p.plays += 1; b.textContent = "\u275A\u275A Playing " + label; });
    audio.addEventListener("pause", function () { b.textContent = "\u25B6 Play " + label; });
    audio.addEventListener("timeupdate", function () {
      var dt = audio.currentTime - p.last;
      if (dt > 0 && dt < 1.0) p.listened += dt;  // count forward playback only, never seeks
      p.last = audio.currentTime;
      var d = audio.duration || stim.duration;
      fill.style.width = Math.min(100, 100 * audio.currentTime / d) + "%";
    });
    audio.addEventListener("ended", function () {
      var d = audio.duration || stim.duration;
      var dt = d - p.last;
      if (dt > 0 && dt < 1.0) p.listened += dt;
      p.last = 0;
      p.ended = true; box.className = "player heard"; fill.style.width = "100%";
      b.textContent = "\u21BB Replay " + label;
      refreshAnswers();
    });
    box.appendChild(b); box.appendChild(meter);
    return {box: box, player: p};
  }

  function render(state) {
    el("question").textContent = state.question;
    var pr = state.progress;
    el("progress-text").textContent = "Round " + Math.min(pr.done + 1, pr.total) + " of " + pr.total;
    el("bar").style.width = (100 * pr.done / Math.max(pr.total, 1)) + "%";
    var players = el("players"); players.innerHTML = "";
    current = {trial: state.trial.id, players: {}, shownAt: performance.now(), reference: null};
    var ref = el("reference"); ref.innerHTML = ""; ref.hidden = true;
    if (state.reference) {
      var ra = new Audio(state.reference.url); ra.preload = "auto";
      var rb = button("\u25B6 Reference voice", "play-reference");
      rb.addEventListener("click", function () { stopOthers(ra); ra.currentTime = 0; ra.play(); });
      ref.appendChild(rb); ref.hidden = false; current.reference = ra;
    }
    state.trial.stimuli.forEach(function (stim) {
      var made = makePlayer(stim);
      players.appendChild(made.box);
      current.players[stim.side] = made.player;
    });
    var answers = el("answers"); answers.innerHTML = "";
    if (state.test_type === "mos") {
      answers.className = "answers mos";
      state.labels.forEach(function (l) {
        var b = button(l.value + " \u2013 " + l.label, "answer-" + l.value);
        b.addEventListener("click", function () { vote(String(l.value)); });
        answers.appendChild(b);
      });
    } else {
      answers.className = "answers ab";
      ["A", "B"].forEach(function (side) {
        var b = button(side, "answer-" + side);
        b.addEventListener("click", function () { vote(side); });
        answers.appendChild(b);
      });
      if (state.allow_no_preference) {
        var n = button("No preference", "answer-none", "wide");
        n.addEventListener("click", function () { vote("none"); });
        answers.appendChild(n);
      }
    }
    refreshAnswers();
  }

  function load() {
    clearError();
    fetch(base + "/api/state", {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
      .then(function (res) {
        if (!res.ok) { showError(res.body.error || "This link cannot be used."); return; }
        if (res.body.done) { window.location.assign(base + "/done"); return; }
        render(res.body);
      })
      .catch(function () { showError("Cannot reach the server. Check your connection and reload."); });
  }

  function vote(response) {
    if (sending || !allHeard()) return;
    sending = true; refreshAnswers(); stopOthers(null);
    var plays = {}, listened = {};
    Object.keys(current.players).forEach(function (k) {
      plays[k] = current.players[k].plays;
      listened[k] = Math.round(current.players[k].listened * 1000) / 1000;
    });
    var body = JSON.stringify({
      trial: current.trial, response: response, plays: plays, listened: listened,
      response_time_ms: Math.round(performance.now() - current.shownAt), client_time: new Date().toISOString()
    });
    fetch(base + "/api/vote", {method: "POST", headers: {"Content-Type": "application/json"}, body: body,
                               credentials: "same-origin"})
      .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
      .then(function (res) {
        sending = false;
        if (!res.ok) { showError(res.body.error || "Your answer was not saved."); refreshAnswers(); return; }
        if (res.body.done) { window.location.assign(base + "/done"); return; }
        load();
      })
      .catch(function () { sending = false; refreshAnswers(); showError("Not saved: cannot reach the server. Try again."); });
  }

  load();
})();
