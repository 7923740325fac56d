"""The dataset's 20 classical works (music21 corpus) and their MIDI export.

All are public-domain scores shipped with music21 (checked to parse and export with music21 10.5);
durations are those of the exported MIDI at the score's own tempo marks, 18 s to 4.6 min, about
36 minutes in all. Ensemble works (quartets, songs) are played on the piano like everything else.
The export (`music21 Score.write('midi')`) is cached as `<out_dir>/midi/<song_id>.mid`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import warnings


@dataclasses.dataclass(frozen=True)
class Song:
  id: str  # file-name-safe identifier, used for songs/<id>.npz and midi/<id>.mid
  corpus_path: str  # music21 corpus name, for music21.corpus.parse
  title: str


SONGS: tuple[Song, ...] = (
    Song("bach_bwv846_prelude", "bach/bwv846",
         "J. S. Bach: Prelude in C major, BWV 846 (Well-Tempered Clavier I)"),
    Song("bach_bwv1_6_chorale", "bach/bwv1.6",
         "J. S. Bach: Chorale 'Wie schoen leuchtet der Morgenstern', BWV 1.6"),
    Song("cpe_bach_h186", "cpebach/h186", "C. P. E. Bach: Sonata movement, H. 186"),
    Song("handel_lascia_chio_pianga", "handel/rinaldo/Lascia_chio_pianga",
         "G. F. Handel: 'Lascia ch'io pianga' (Rinaldo)"),
    Song("corelli_op3no1_grave", "corelli/opus3no1/1grave",
         "A. Corelli: Trio Sonata Op. 3 No. 1, Grave"),
    Song("haydn_op1no1_mvt1", "haydn/opus1no1/movement1",
         "J. Haydn: String Quartet Op. 1 No. 1, movement 1"),
    Song("haydn_op1no1_mvt5", "haydn/opus1no1/movement5",
         "J. Haydn: String Quartet Op. 1 No. 1, movement 5"),
    Song("mozart_k155_mvt2", "mozart/k155/movement2",
         "W. A. Mozart: String Quartet K. 155, movement 2"),
    Song("mozart_k155_mvt3", "mozart/k155/movement3",
         "W. A. Mozart: String Quartet K. 155, movement 3"),
    Song("mozart_k156_mvt4", "mozart/k156/movement4",
         "W. A. Mozart: String Quartet K. 156, movement 4"),
    Song("mozart_k545_mvt1_exposition", "mozart/k545/movement1_exposition",
         "W. A. Mozart: Piano Sonata K. 545, movement 1 (exposition)"),
    Song("beethoven_op59no3_mvt3", "beethoven/opus59no3/movement3",
         "L. van Beethoven: String Quartet Op. 59 No. 3, movement 3 (Menuetto)"),
    Song("schubert_der_lindenbaum", "schubert/Lindenbaum",
         "F. Schubert: 'Der Lindenbaum' (Winterreise)"),
    Song("clara_schumann_polonaise_op1no1", "schumann_clara/polonaise_op1n1",
         "C. Schumann: Polonaise Op. 1 No. 1"),
    Song("clara_schumann_polonaise_op1no3", "schumann_clara/polonaise_op1n3",
         "C. Schumann: Polonaise Op. 1 No. 3"),
    Song("clara_schumann_polonaise_op1no4", "schumann_clara/polonaise_op1n4",
         "C. Schumann: Polonaise Op. 1 No. 4"),
    Song("verdi_la_donna_e_mobile", "verdi/laDonnaEMobile",
         "G. Verdi: 'La donna e mobile' (Rigoletto)"),
    Song("joplin_maple_leaf_rag", "joplin/maple_leaf_rag", "S. Joplin: Maple Leaf Rag"),
    Song("schoenberg_op19_no2", "schoenberg/opus19/movement2",
         "A. Schoenberg: Six Little Piano Pieces Op. 19, No. 2"),
    Song("schoenberg_op19_no6", "schoenberg/opus19/movement6",
         "A. Schoenberg: Six Little Piano Pieces Op. 19, No. 6"),
)


def export_midi(song: Song, path: str) -> None:
  """Writes `song`'s score as MIDI to `path` (atomically) with music21.

  Raises:
    ValueError: if music21 cannot find, parse or export the work (message names it).
  """
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      from music21 import corpus
      score = corpus.parse(song.corpus_path)
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      fd, tmp = tempfile.mkstemp(suffix=".mid.tmp", dir=os.path.dirname(os.path.abspath(path)))
      os.close(fd)
      try:
        score.write("midi", fp=tmp)
        os.replace(tmp, path)
      finally:
        if os.path.exists(tmp):
          os.remove(tmp)
  except ValueError:
    raise
  except Exception as e:  # music21 raises many exception types
    raise ValueError(f"music21 could not export {song.corpus_path!r}: {type(e).__name__}: "
                     f"{str(e)[:120]}") from None
