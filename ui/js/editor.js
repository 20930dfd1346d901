// Code editing keys for a plain textarea: Tab indents, Shift+Tab outdents,
// Enter keeps the indentation, Ctrl/Cmd+Enter submits, and Escape lets the
// next Tab leave the editor so keyboard users are never trapped.

const INDENT = "    ";

/**
 * Replaces the text between start and end. execCommand keeps the browser's
 * undo history; setRangeText is the fallback where execCommand is missing.
 */
function replaceRange(textarea, start, end, text, selectStart, selectEnd) {
  textarea.focus();
  textarea.setSelectionRange(start, end);
  const inserted = typeof document.execCommand === "function" && document.execCommand("insertText", false, text);
  if (!inserted) {
    textarea.setRangeText(text, start, end, "end");
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  }
  if (selectStart !== undefined) {
    textarea.setSelectionRange(selectStart, selectEnd);
  }
}

function lineStartBefore(value, position) {
  return value.lastIndexOf("\n", position - 1) + 1;
}

// Indents or outdents every line touched by the selection.
function shiftLines(textarea, outdent) {
  const { value, selectionStart, selectionEnd } = textarea;
  const blockStart = lineStartBefore(value, selectionStart);
  // A selection that ends at the start of a line does not include that line.
  const lastPosition = selectionEnd > selectionStart && value[selectionEnd - 1] === "\n" ? selectionEnd - 1 : selectionEnd;
  let blockEnd = value.indexOf("\n", lastPosition);
  if (blockEnd === -1) {
    blockEnd = value.length;
  }

  const lines = value.slice(blockStart, blockEnd).split("\n");
  let firstLineShift = 0;
  const shifted = lines.map((line, index) => {
    if (!outdent) {
      if (index === 0) {
        firstLineShift = INDENT.length;
      }
      return INDENT + line;
    }
    const leading = line.match(/^ {1,4}|^\t/);
    const removed = leading ? leading[0].length : 0;
    if (index === 0) {
      firstLineShift = -removed;
    }
    return line.slice(removed);
  });
  const text = shifted.join("\n");
  if (text === value.slice(blockStart, blockEnd)) {
    return;
  }
  const newStart = Math.max(blockStart, selectionStart + firstLineShift);
  const newEnd = selectionEnd === selectionStart ? newStart : blockStart + text.length;
  replaceRange(textarea, blockStart, blockEnd, text, newStart, newEnd);
}

function insertIndent(textarea) {
  const { value, selectionStart } = textarea;
  const column = selectionStart - lineStartBefore(value, selectionStart);
  const spaces = INDENT.length - (column % INDENT.length);
  const position = selectionStart + spaces;
  replaceRange(textarea, selectionStart, textarea.selectionEnd, " ".repeat(spaces), position, position);
}

// A new line keeps the indentation of the current one, plus one level after
// a line ending in ":" (Python blocks) or an opening bracket.
function insertNewline(textarea) {
  const { value, selectionStart, selectionEnd } = textarea;
  const lineStart = lineStartBefore(value, selectionStart);
  const before = value.slice(lineStart, selectionStart);
  let indentation = before.match(/^[ \t]*/)[0];
  if (/[:{[(]\s*$/.test(before)) {
    indentation += INDENT;
  }
  const text = `\n${indentation}`;
  const position = selectionStart + text.length;
  replaceRange(textarea, selectionStart, selectionEnd, text, position, position);
}

/** Adds the editing keys to a textarea; onSubmit runs on Ctrl/Cmd+Enter. */
export function attachCodeEditor(textarea, onSubmit) {
  let tabLeavesEditor = false;

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      onSubmit();
      return;
    }
    if (event.key === "Escape") {
      tabLeavesEditor = true;
      return;
    }
    if (event.key === "Tab" && !event.ctrlKey && !event.altKey && !event.metaKey) {
      if (tabLeavesEditor) {
        tabLeavesEditor = false;
        return; // the browser moves the focus
      }
      event.preventDefault();
      const multiLine = textarea.value.slice(textarea.selectionStart, textarea.selectionEnd).includes("\n");
      if (event.shiftKey || multiLine) {
        shiftLines(textarea, event.shiftKey);
      } else {
        insertIndent(textarea);
      }
      return;
    }
    tabLeavesEditor = false;
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.isComposing) {
      event.preventDefault();
      insertNewline(textarea);
    }
  });

  textarea.addEventListener("blur", () => {
    tabLeavesEditor = false;
  });
}
