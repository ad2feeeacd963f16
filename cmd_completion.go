package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

var completionCommand = &cli.Command{
	Name:      "completion",
	Usage:     "print a shell completion script for bash, zsh or fish",
	ArgsUsage: "bash|zsh|fish",
	Description: "bash:  source <(warmport completion bash)          (e.g. in ~/.bashrc)\n" +
		"zsh:   source <(warmport completion zsh)           (after compinit, e.g. in ~/.zshrc)\n" +
		"fish:  warmport completion fish | source           (or > ~/.config/fish/completions/warmport.fish)",
	OnUsageError: onUsageError,
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usageErrorf("completion needs one shell: warmport completion bash, zsh or fish")
		}
		w := c.App.Writer
		switch sh := c.Args().First(); sh {
		case "bash":
			writeBashCompletion(w, c.App)
		case "zsh":
			writeZshCompletion(w, c.App)
		case "fish":
			script, err := c.App.ToFishCompletion()
			if err != nil {
				return runtimeErrorf("fish completion: %v", err)
			}
			io.WriteString(w, script)
			// A command name is never a file: without this, fish offers
			// the current directory's files beside the commands.
			fmt.Fprintf(w, "complete -c %s -n '__fish_%s_no_subcommand' -f\n", c.App.Name, c.App.Name)
			writeFishProfileNames(w)
		default:
			return usageErrorf("completion %q: unknown shell; write warmport completion bash, zsh or fish", sh)
		}
		return nil
	},
}

// visible are the commands and flags a user types, without hidden ones.
func visibleCommands(app *cli.App) []*cli.Command {
	var out []*cli.Command
	for _, c := range app.Commands {
		if !c.Hidden {
			out = append(out, c)
		}
	}
	return out
}

// flagWords are a command's flags as typed: --warm, -q.
func flagWords(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		for _, n := range f.Names() {
			out = append(out, dashed(n))
		}
	}
	return out
}

// writeBashCompletion writes a bash script made from the app's own command
// and flag tables: commands first, then the flags of the command typed.
func writeBashCompletion(w io.Writer, app *cli.App) {
	var cmds []string
	var cases strings.Builder
	for _, c := range visibleCommands(app) {
		cmds = append(cmds, c.Name)
		words := append(flagWords(c.Flags), "--help")
		switch c.Name {
		case "completion":
			words = []string{"bash", "zsh", "fish"}
		case "up":
			fmt.Fprintf(&cases, bashUpCase, bashValueFlags(c.Flags), strings.Join(words, " "))
			continue
		}
		fmt.Fprintf(&cases, "    %s) words=%q ;;\n", c.Name, strings.Join(words, " "))
	}
	fmt.Fprintf(w, `# bash completion for warmport; load with: source <(warmport completion bash)
_warmport() {
  local cur=${COMP_WORDS[COMP_CWORD]} cmd="" words i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in -*) ;; *) cmd=${COMP_WORDS[i]}; break ;; esac
  done
  case $cmd in
    "") words=%q ;;
%s    *) return ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _warmport warmport
`, strings.Join(append(cmds, "help", "--help", "--version"), " "), cases.String())
}

// writeZshCompletion writes a zsh script (for compinit) made from the same
// tables, with each flag's usage as its description.
func writeZshCompletion(w io.Writer, app *cli.App) {
	var cmds, cases strings.Builder
	for _, c := range visibleCommands(app) {
		fmt.Fprintf(&cmds, "    %s\n", zshQuote(c.Name+":"+c.Usage))
		fmt.Fprintf(&cases, "    %s)\n      _arguments -s", c.Name)
		for _, f := range c.Flags {
			usage := ""
			if u, ok := f.(cli.DocGenerationFlag); ok {
				usage = u.GetUsage()
			}
			value := ""
			if takesValue(f) {
				value = ":value:"
			}
			for _, n := range f.Names() {
				fmt.Fprintf(&cases, " \\\n        %s", zshQuote(dashed(n)+"["+zshEscape(usage)+"]"+value))
			}
		}
		switch c.Name {
		case "completion":
			fmt.Fprintf(&cases, " \\\n        '1:shell:(bash zsh fish)'")
		case "up":
			fmt.Fprintf(&cases, " \\\n        '*::name:_warmport_profile_names'")
		default:
			fmt.Fprintf(&cases, " \\\n        '*::argument:_default'")
		}
		fmt.Fprintf(&cases, " ;;\n")
	}
	fmt.Fprintf(w, `#compdef warmport
# zsh completion for warmport; load with: source <(warmport completion zsh)
_warmport() {
  local -a cmds
  cmds=(
%s  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'warmport command' cmds
    return
  fi
  # for _warmport_profile_names: _arguments narrows $words to the arguments
  _warmport_bin=$words[1] _warmport_typed=(${words[3,CURRENT-1]})
  case $words[2] in
%s  esac
}
_warmport_profile_names() {
  local -a names
  names=(${(f)"$($_warmport_bin __profile-names $_warmport_typed 2>/dev/null)"})
  compadd -a names
}
if [[ $funcstack[1] == _warmport ]]; then
  _warmport "$@"
else
  compdef _warmport warmport
fi
`, cmds.String(), cases.String())
}

// zshEscape escapes what _arguments reads in a description: [ ] : and \.
func zshEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// bashUpCase completes up: flags, or the profile's forward names, asked of
// the warmport being completed (__profile-names reads -f FILE from the
// words typed); after a flag that takes a value, or after --, bash's
// default (files).
const bashUpCase = `    up)
      case ${COMP_WORDS[COMP_CWORD-1]} in %s) return ;; esac
      [[ " ${COMP_WORDS[*]:2:COMP_CWORD-2} " == *" -- "* ]] && return
      if [[ $cur == -* ]]; then words=%q; else words=$("${COMP_WORDS[0]}" __profile-names "${COMP_WORDS[@]:2:COMP_CWORD-2}" 2>/dev/null); fi ;;
`

// bashValueFlags are the flags that take a value as a case pattern: -f|--file|...
func bashValueFlags(flags []cli.Flag) string {
	var vf []cli.Flag
	for _, f := range flags {
		if takesValue(f) {
			vf = append(vf, f)
		}
	}
	return strings.Join(flagWords(vf), "|")
}

// writeFishProfileNames adds the profile's forward names after up, asked of
// the warmport being completed, with the words typed after up (for -f FILE).
func writeFishProfileNames(w io.Writer) {
	io.WriteString(w, `function __warmport_profile_names
    set -l typed (commandline -opc)
    contains -- -- $typed; and return
    $typed[1] __profile-names $typed[3..-1] 2>/dev/null
end
complete -c warmport -n '__fish_seen_subcommand_from up' -f -a '(__warmport_profile_names)'
`)
}

// profileNamesCommand prints the forward names of a profile, one a line,
// for the completion scripts. Its arguments are the words typed after up,
// from which it takes -f FILE; a profile it cannot read prints nothing.
var profileNamesCommand = &cli.Command{
	Name:            "__profile-names",
	Hidden:          true,
	SkipFlagParsing: true,
	Action: func(c *cli.Context) error {
		path, args := defaultProfile, c.Args().Slice()
		for i, a := range args {
			if a == "--" {
				break
			}
			if v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "file="); ok && strings.HasPrefix(a, "-") {
				path = v
			} else if v, ok := strings.CutPrefix(a, "-f="); ok {
				path = v
			} else if (a == "-f" || a == "--file" || a == "-file") && i+1 < len(args) {
				path = args[i+1]
			}
		}
		if p, err := loadProfile(path, true); err == nil {
			for _, n := range p.Names() {
				fmt.Fprintln(c.App.Writer, n)
			}
		}
		return nil
	},
}
